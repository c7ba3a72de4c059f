package dev.distillery.common.artifacts;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fencing: a job is worked on by one process at a time in each stage. A lease is a file in the
 * shared artifact store ({@code <root>/.jobs/<jobId>.<stage>.lease.<epoch>}) holding its owner and
 * the time it expires; the holder renews it while it works. Taking a lease is creating the next
 * epoch's file with a hard link, which the file system does atomically for one claimant only: a
 * free job is taken at epoch 1, an expired one (its holder died or hangs) at the next epoch. A
 * holder still owns its lease while its epoch's file names it and no later epoch exists; one that
 * lost it must stop without publishing ({@link Lease#held()}). The files stay after the job, like
 * the claims beside them (a few bytes per job and stage).
 */
public final class JobLeases implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(JobLeases.class);
  private static final Duration WAIT_STEP = Duration.ofMillis(500);
  private static final AtomicLong HOLDERS = new AtomicLong();
  private static final String PROCESS = ManagementFactory.getRuntimeMXBean().getName() + "/" + UUID.randomUUID();

  private final Path dir;
  private final Duration duration;
  private final Map<Lease, Boolean> held = new ConcurrentHashMap<>();
  private final ScheduledExecutorService renewer = Executors.newSingleThreadScheduledExecutor(runnable -> {
    Thread thread = new Thread(runnable, "distillery-leases");
    thread.setDaemon(true);
    return thread;
  });

  /** Leases in {@code <artifactsRoot>/.jobs}, each valid for {@code duration} after its last renewal. */
  public JobLeases(Path artifactsRoot, Duration duration) {
    this.dir = artifactsRoot.toAbsolutePath().normalize().resolve(".jobs");
    this.duration = duration;
    long every = Math.max(100, duration.toMillis() / 3);
    renewer.scheduleWithFixedDelay(this::renewAll, every, every, TimeUnit.MILLISECONDS);
  }

  /** One process's hold of one job in one stage. */
  public final class Lease implements AutoCloseable {
    private final String jobId;
    private final String stage;
    private final long epoch;
    private final String owner;
    private volatile boolean released;

    private Lease(String jobId, String stage, long epoch, String owner) {
      this.jobId = jobId;
      this.stage = stage;
      this.epoch = epoch;
      this.owner = owner;
    }

    public long epoch() {
      return epoch;
    }

    /** True until released, while this lease is the job's current one: no later epoch, and its file names this holder. */
    public boolean held() {
      if (released) {
        return false;
      }
      try {
        return !Files.exists(file(jobId, stage, epoch + 1)) && owner.equals(read(file(jobId, stage, epoch)).owner());
      } catch (IOException e) {
        return false;
      }
    }

    /**
     * Gives the job up: the lease expires now and the next claimant takes the next epoch. Files are
     * never deleted, so a holder of an older epoch, however late it wakes, always sees a later one.
     */
    @Override
    public void close() {
      held.remove(this);
      try {
        if (held()) {
          write(file(jobId, stage, epoch), owner, 0);
        }
        released = true;
      } catch (IOException e) {
        LOG.warn("job {}: cannot release its {} lease; it expires in {}", jobId, stage, duration, e);
      }
    }

    private void renew() throws IOException {
      if (held()) {
        write(file(jobId, stage, epoch), owner, System.currentTimeMillis() + duration.toMillis());
      }
    }
  }

  private record Holder(String owner, long expiresAtMs) {}

  /**
   * Takes the lease of {@code jobId} in {@code stage}, waiting while a live holder has it. Returns
   * empty when {@code giveUp} turns true first (the job ended, say).
   */
  public Optional<Lease> acquire(String jobId, String stage, BooleanSupplier giveUp)
      throws IOException, InterruptedException {
    Files.createDirectories(dir);
    String owner = PROCESS + "#" + HOLDERS.incrementAndGet();
    while (true) {
      long current = currentEpoch(jobId, stage);
      boolean free = current == 0;
      if (!free) {
        try {
          free = read(file(jobId, stage, current)).expiresAtMs() < System.currentTimeMillis();
        } catch (NoSuchFileException e) {
          continue; // released meanwhile
        }
      }
      if (free && create(file(jobId, stage, current + 1), owner)) {
        Lease lease = new Lease(jobId, stage, current + 1, owner);
        held.put(lease, true);
        if (current > 0) {
          LOG.warn("job {}: took over its {} lease at epoch {} from a holder that stopped renewing it",
              jobId, stage, current + 1);
        }
        return Optional.of(lease);
      }
      if (giveUp.getAsBoolean()) {
        return Optional.empty();
      }
      Thread.sleep(WAIT_STEP.toMillis());
    }
  }

  /** The highest epoch whose file exists, 0 when none does (epoch files are never removed). */
  private long currentEpoch(String jobId, String stage) {
    long epoch = 0;
    while (Files.exists(file(jobId, stage, epoch + 1))) {
      epoch++;
    }
    return epoch;
  }

  private boolean create(Path lease, String owner) throws IOException {
    Path temp = Files.createTempFile(dir, "." + lease.getFileName(), ".part");
    try {
      Files.writeString(temp, owner + "\n" + (System.currentTimeMillis() + duration.toMillis()));
      Files.createLink(lease, temp);
      return true;
    } catch (FileAlreadyExistsException e) {
      return false;
    } finally {
      Files.deleteIfExists(temp);
    }
  }

  private void write(Path lease, String owner, long expiresAtMs) throws IOException {
    Path temp = Files.createTempFile(dir, "." + lease.getFileName(), ".part");
    Files.writeString(temp, owner + "\n" + expiresAtMs);
    Files.move(temp, lease, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  private static Holder read(Path lease) throws IOException {
    String[] lines = Files.readString(lease).split("\n");
    return new Holder(lines[0], lines.length > 1 ? Long.parseLong(lines[1].trim()) : 0);
  }

  private Path file(String jobId, String stage, long epoch) {
    return dir.resolve(jobId + "." + stage + ".lease." + epoch);
  }

  private void renewAll() {
    for (Lease lease : held.keySet()) {
      try {
        lease.renew();
      } catch (IOException | RuntimeException e) {
        LOG.warn("job {}: cannot renew its {} lease: {}", lease.jobId, lease.stage, e.toString());
      }
    }
  }

  @Override
  public void close() {
    renewer.shutdownNow();
  }
}
