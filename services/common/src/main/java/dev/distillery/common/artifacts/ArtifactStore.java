package dev.distillery.common.artifacts;

import dev.distillery.schemas.ArtifactRef;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * Stores artifacts (checkpoints) as files under a root directory and names them by {@code file:}
 * URI with their SHA-256 and size. Writes are atomic, and a file's name carries the start of its
 * hash ({@code student-1a2b3c4d5e6f.params}): a re-delivered job that writes different bytes adds a
 * file instead of changing one an earlier event already points at.
 */
public final class ArtifactStore {
  private static final Pattern SCHEME = Pattern.compile("[A-Za-z][A-Za-z0-9+.-]*:");

  private final Path root;

  public ArtifactStore(Path root) {
    this.root = root.toAbsolutePath().normalize();
  }

  /** The store a request's outputs go to: its {@code outputUri}, or this store when null. */
  public ArtifactStore forOutput(String outputUri) {
    return outputUri == null ? this : new ArtifactStore(localPath(outputUri));
  }

  /** Something that writes an artifact's bytes. */
  @FunctionalInterface
  public interface Writer {
    void writeTo(OutputStream out) throws IOException;
  }

  /** Writes {@code <root>/<jobId>/<stem>-<sha256 prefix><extension>} and returns its reference. */
  public ArtifactRef write(String jobId, String fileName, Writer writer) throws IOException {
    Path dir = root.resolve(safeName(jobId));
    Files.createDirectories(dir);
    Path temp = Files.createTempFile(dir, "." + safeName(fileName), ".part");
    MessageDigest digest = sha256();
    try {
      try (OutputStream out = new DigestOutputStream(Files.newOutputStream(temp), digest)) {
        writer.writeTo(out);
      }
      String sha256 = HexFormat.of().formatHex(digest.digest());
      int dot = fileName.lastIndexOf('.');
      String stem = dot > 0 ? fileName.substring(0, dot) : fileName;
      String extension = dot > 0 ? fileName.substring(dot) : "";
      Path target = dir.resolve(stem + "-" + sha256.substring(0, 12) + extension);
      Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      return new ArtifactRef(target.toUri().toString(), sha256, Files.size(target));
    } finally {
      Files.deleteIfExists(temp);
    }
  }

  /** The local file of {@code ref}, after checking that its bytes are the ones referenced. */
  public static Path open(ArtifactRef ref) throws IOException {
    Path path = localPath(ref.getUri());
    String actual = sha256Of(path);
    if (!actual.equals(ref.getSha256())) {
      throw new IOException("artifact " + ref.getUri() + " has sha256 " + actual + ", expected " + ref.getSha256());
    }
    return path;
  }

  /**
   * The local file a {@code file:} URI or a path names, as the file system resolves it: symbolic
   * links of the part that exists are followed, then {@code ..} of the rest is removed. The one
   * parser of paths: what {@link dev.distillery.common.config.AllowedRoots} checked is what is
   * opened. A relative path is taken from the working directory (requests may not use one).
   *
   * @throws IllegalArgumentException for another scheme, a URI with a host, query or fragment, or
   *     a path that cannot be resolved (a dangling link, a directory that cannot be read)
   */
  public static Path localPath(String uri) {
    boolean fileUri = uri.regionMatches(true, 0, "file:", 0, 5);
    if (!fileUri && hasScheme(uri)) {
      throw new IllegalArgumentException("only file: URIs and absolute paths are supported");
    }
    URI parsed = fileUri ? parse(uri, URI::create) : null;
    if (parsed != null && (parsed.getAuthority() != null || parsed.getQuery() != null || parsed.getFragment() != null)) {
      throw new IllegalArgumentException("must be a file: URI without host, query or fragment");
    }
    Path path = parsed != null ? parse(parsed, Path::of) : parse(uri, Path::of);
    try {
      return realPath(path.toAbsolutePath());
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot be resolved", e);
    }
  }

  /** Whether {@code uri} starts with a URI scheme ({@code file:}, {@code http:}, ...). */
  public static boolean hasScheme(String uri) {
    return SCHEME.matcher(uri).lookingAt();
  }

  /** The parsers' own messages quote the input, which may be anything: say what, not where. */
  private static <T, R> R parse(T input, Function<T, R> parser) {
    try {
      return parser.apply(input);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("is not a valid file: URI or path");
    }
  }

  /** {@link Path#toRealPath} of the longest prefix that exists, then the rest, normalised. */
  private static Path realPath(Path path) throws IOException {
    Path existing = path;
    while (existing != null && !Files.exists(existing, LinkOption.NOFOLLOW_LINKS)) {
      existing = existing.getParent();
    }
    return existing == null ? path.normalize() : existing.toRealPath().resolve(existing.relativize(path)).normalize();
  }

  public static String sha256Of(Path path) throws IOException {
    MessageDigest digest = sha256();
    try (InputStream in = Files.newInputStream(path)) {
      byte[] buffer = new byte[1 << 16];
      for (int n; (n = in.read(buffer)) > 0; ) {
        digest.update(buffer, 0, n);
      }
    }
    return HexFormat.of().formatHex(digest.digest());
  }

  public Path root() {
    return root;
  }

  private static String safeName(String name) {
    if (name.isBlank() || name.contains("/") || name.contains("\\") || name.startsWith(".")) {
      throw new IllegalArgumentException("not a safe file name: '" + name + "'");
    }
    return name;
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new UncheckedIOException(new IOException("SHA-256 is not available", e));
    }
  }
}
