package dev.distillery.common.artifacts;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.artifacts.JobClaims.Claim;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JobClaimsTest {
  private static final byte[] FIRST = "first request".getBytes(StandardCharsets.UTF_8);
  private static final byte[] OTHER = "other request".getBytes(StandardCharsets.UTF_8);

  @Test
  void anIdBelongsToTheFirstRequestThatClaimsIt(@TempDir Path root) throws Exception {
    JobClaims claims = new JobClaims(root);
    assertThat(claims.claim("job-1", "job-1", FIRST, "PLAN")).isEqualTo(Claim.NEW);
    assertThat(claims.claim("job-1", "job-1", FIRST, "PLAN")).as("re-delivered before it was planned").isEqualTo(Claim.RESUMED);
    claims.finished("job-1", "PLAN");
    assertThat(claims.claim("job-1", "job-1", FIRST, "PLAN")).as("re-delivered after").isEqualTo(Claim.DUPLICATE);
    assertThat(claims.claim("job-1", "job-1", FIRST, "TRANSFER")).as("another stage's own progress").isEqualTo(Claim.RESUMED);
    assertThat(claims.claim("job-1", "job-1", OTHER, "PLAN")).isEqualTo(Claim.TAKEN);
    assertThat(claims.claim("job-2", "job-1", FIRST, "PLAN")).as("keyed by another id").isEqualTo(Claim.MISKEYED);
    // Another store (a restarted replica on the same volume) agrees.
    assertThat(new JobClaims(root).claim("job-1", "job-1", OTHER, "PLAN")).isEqualTo(Claim.TAKEN);
  }

  /** Replicas racing for one id: exactly one wins, whatever the interleaving. */
  @Test
  void ofRacingClaimsExactlyOneWins(@TempDir Path root) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      for (int round = 0; round < 20; round++) {
        String id = "race-" + round;
        List<Future<Claim>> results = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
          byte[] request = ("request " + i).getBytes(StandardCharsets.UTF_8);
          results.add(pool.submit((Callable<Claim>) () -> new JobClaims(root).claim(id, id, request, "PLAN")));
        }
        List<Claim> claims = new ArrayList<>();
        for (Future<Claim> result : results) {
          claims.add(result.get());
        }
        assertThat(claims).as(id).filteredOn(c -> c == Claim.NEW).hasSize(1);
        assertThat(claims).as(id).filteredOn(c -> c == Claim.TAKEN).hasSize(7);
      }
    } finally {
      pool.shutdownNow();
    }
  }
}
