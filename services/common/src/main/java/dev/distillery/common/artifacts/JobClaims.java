package dev.distillery.common.artifacts;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Which request owns each job id, kept as files in the shared artifact store
 * ({@code <root>/.jobs/<jobId>.request}, holding the SHA-256 of the request record's bytes), so
 * that every replica and every restart agrees: a job id belongs to the first valid request that
 * used it. The stages that take requests claim ids; a different request with a used id is refused,
 * and the same record delivered again is told apart from a job to run again.
 *
 * <p>Claims are made with a hard link, which the file system creates atomically or not at all: two
 * replicas claiming one id at once cannot both win. Job ids are file names already (validated).
 */
public final class JobClaims {
  /** What a request is, given the claims. */
  public enum Claim {
    /** The id was free and is now this request's. */
    NEW,
    /** This request already owns the id and {@code stage} has not finished it: a re-delivery to resume. */
    RESUMED,
    /** This request already owns the id and {@code stage} finished it: nothing to do. */
    DUPLICATE,
    /** Another request owns the id. */
    TAKEN,
    /** The record's key is not its job id: every view of the job (keyed by id) would miss it. */
    MISKEYED
  }

  private final Path dir;

  public JobClaims(Path artifactsRoot) {
    // A leading dot: no job id (validated to start with a letter or digit) can name this directory.
    this.dir = artifactsRoot.toAbsolutePath().normalize().resolve(".jobs");
  }

  /**
   * Claims {@code jobId} (a valid id: a file name) for {@code request}, the bytes of the record
   * under {@code key}, or says why not, for {@code stage}. Every stage that takes requests claims
   * each one, valid or not, in its partition's order, so all agree which request came first.
   */
  public Claim claim(String key, String jobId, byte[] request, String stage) throws IOException {
    if (!jobId.equals(key)) {
      return Claim.MISKEYED;
    }
    Files.createDirectories(dir);
    Path claim = claimFile(jobId);
    String hash = sha256(request);
    Path temp = Files.createTempFile(dir, "." + jobId, ".part");
    try {
      Files.writeString(temp, hash);
      Files.createLink(claim, temp);
      return Claim.NEW;
    } catch (FileAlreadyExistsException e) {
      if (!Files.readString(claim).equals(hash)) {
        return Claim.TAKEN;
      }
      return Files.exists(doneFile(jobId, stage)) ? Claim.DUPLICATE : Claim.RESUMED;
    } finally {
      Files.deleteIfExists(temp);
    }
  }

  /** Records that {@code stage} handed the job on (its outputs exist): later deliveries are duplicates. */
  public void finished(String jobId, String stage) throws IOException {
    Files.createDirectories(dir);
    Path done = doneFile(jobId, stage);
    if (!Files.exists(done)) {
      Files.writeString(done, "");
    }
  }

  /** True when {@code stage} handed the job on before (or ended it): a delivery now is a duplicate. */
  public boolean isFinished(String jobId, String stage) {
    return Files.exists(doneFile(jobId, stage));
  }

  private Path claimFile(String jobId) {
    return dir.resolve(jobId + ".request");
  }

  private Path doneFile(String jobId, String stage) {
    return dir.resolve(jobId + "." + stage + ".done");
  }

  private static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is not available", e);
    }
  }
}
