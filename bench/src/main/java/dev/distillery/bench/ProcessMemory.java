package dev.distillery.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** What a service process holds, read from outside it: /proc and jcmd. */
final class ProcessMemory {
  private ProcessMemory() {}

  /** A field of /proc/PID/status, kB values shown in MB. */
  static String status(long pid, String field) throws Exception {
    for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
      if (line.startsWith(field + ":")) {
        long value = Long.parseLong(line.replaceAll("[^0-9]", ""));
        return line.endsWith("kB") ? String.format("%.0f MB", value / 1024.0) : String.valueOf(value);
      }
    }
    return "?";
  }

  /** The Java heap the process has committed (what the JVM, not libtorch, holds of its RSS). */
  static String heapCommitted(long pid) throws Exception {
    Process jcmd = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(),
        String.valueOf(pid), "GC.heap_info").redirectErrorStream(true).start();
    String out = new String(jcmd.getInputStream().readAllBytes());
    jcmd.waitFor();
    Matcher matcher = Pattern.compile("total (\\d+)K, used").matcher(out);
    return matcher.find() ? String.format("%.0f MB", Long.parseLong(matcher.group(1)) / 1024.0) : "?";
  }
}
