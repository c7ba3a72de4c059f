package dev.distillery.common.artifacts;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Fencing: one holder of a job's lease at a time, an expired holder superseded and told so. */
class JobLeasesTest {

  @Test
  void ofEightClaimantsOfAFreeJobExactlyOneHoldsItUntilItLetsGo(@TempDir Path root) throws Exception {
    try (JobLeases leases = new JobLeases(root, Duration.ofSeconds(30))) {
      for (int round = 0; round < 10; round++) {
        String job = "job-" + round;
        AtomicBoolean giveUp = new AtomicBoolean();
        ExecutorService pool = Executors.newFixedThreadPool(8);
        List<Future<Optional<JobLeases.Lease>>> claims = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
          Callable<Optional<JobLeases.Lease>> claim = () -> leases.acquire(job, "pruner", giveUp::get);
          claims.add(pool.submit(claim));
        }
        JobLeases.Lease winner = null;
        while (winner == null) {
          for (Future<Optional<JobLeases.Lease>> claim : claims) {
            if (claim.isDone()) {
              winner = claim.get().orElseThrow();
            }
          }
          TimeUnit.MILLISECONDS.sleep(10); // polling a condition
        }
        giveUp.set(true);
        pool.shutdown();
        assertThat(pool.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
        long held = 0;
        for (Future<Optional<JobLeases.Lease>> claim : claims) {
          held += claim.get().isPresent() ? 1 : 0;
        }
        assertThat(held).as("holders of %s", job).isEqualTo(1);
        assertThat(winner.epoch()).isEqualTo(1);
        assertThat(winner.held()).isTrue();
        winner.close();
        assertThat(winner.held()).as("released").isFalse();
        try (JobLeases.Lease next = leases.acquire(job, "pruner", () -> true).orElseThrow()) {
          assertThat(next.epoch()).as("the next holder after a release").isEqualTo(2);
          assertThat(winner.held()).isFalse();
        }
      }
    }
  }

  @Test
  void aHolderThatStopsRenewingIsSupersededAndNeverHoldsAgain(@TempDir Path root) throws Exception {
    JobLeases dead = new JobLeases(root, Duration.ofMillis(300));
    JobLeases.Lease stale = dead.acquire("job", "student-trainer", () -> true).orElseThrow();
    dead.close(); // the process hangs or died: no more renewals

    try (JobLeases alive = new JobLeases(root, Duration.ofMillis(300))) {
      AtomicBoolean staleHeldWhileWaiting = new AtomicBoolean(true);
      JobLeases.Lease taken = alive.acquire("job", "student-trainer", () -> {
        staleHeldWhileWaiting.compareAndSet(true, stale.held());
        return false;
      }).orElseThrow();
      assertThat(staleHeldWhileWaiting).as("the old holder held it until it expired").isTrue();
      assertThat(taken.epoch()).isEqualTo(2);
      assertThat(stale.held()).as("superseded").isFalse();
      // Renewals keep the new holder's lease beyond its duration.
      JobLeases other = new JobLeases(root, Duration.ofMillis(300));
      long until = System.nanoTime() + Duration.ofSeconds(1).toNanos();
      Optional<JobLeases.Lease> meanwhile = other.acquire("job", "student-trainer", () -> System.nanoTime() > until);
      assertThat(meanwhile).as("a renewed lease is not taken").isEmpty();
      other.close();
      taken.close();
      assertThat(stale.held()).as("the stale holder, after the new one let go").isFalse();
    }
  }

  @Test
  void leasesOfOtherJobsAndStagesAreIndependent(@TempDir Path root) throws Exception {
    try (JobLeases leases = new JobLeases(root, Duration.ofSeconds(30));
        JobLeases.Lease a = leases.acquire("a", "pruner", () -> true).orElseThrow();
        JobLeases.Lease b = leases.acquire("b", "pruner", () -> true).orElseThrow();
        JobLeases.Lease c = leases.acquire("a", "student-trainer", () -> true).orElseThrow()) {
      assertThat(List.of(a.held(), b.held(), c.held())).containsOnly(true);
      assertThat(leases.acquire("a", "pruner", () -> true)).as("held by a").isEmpty();
    }
  }
}
