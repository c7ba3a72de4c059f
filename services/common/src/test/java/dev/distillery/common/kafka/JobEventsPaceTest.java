package dev.distillery.common.kafka;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

/** The time left that progress events carry. */
class JobEventsPaceTest {
  @Test
  void theTimeLeftIsThePaceSinceTheFirstEventScaledToWhatIsLeft() {
    JobEvents.Pace pace = new JobEvents.Pace(1_000, 0.0);
    assertThat(pace.secondsLeft(0.25, 11_000)).isCloseTo(30.0, within(1e-9));
    assertThat(pace.secondsLeft(0.5, 11_000)).isCloseTo(10.0, within(1e-9));
    // A stage first seen mid-way (a resumed job): its pace counts from there.
    JobEvents.Pace resumed = new JobEvents.Pace(0, 0.5);
    assertThat(resumed.secondsLeft(0.75, 20_000)).isCloseTo(20.0, within(1e-9));
  }

  @Test
  void withoutAStepMadeThereIsNoEstimate() {
    JobEvents.Pace pace = new JobEvents.Pace(1_000, 0.2);
    assertThat(pace.secondsLeft(0.2, 5_000)).isNull();
    assertThat(pace.secondsLeft(0.4, 1_000)).isNull();
  }
}
