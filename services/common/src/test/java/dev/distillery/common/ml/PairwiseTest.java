package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PairwiseTest {
  private static final long SUITE_MACS = 40_000_000L;

  @Test
  void suiteDesignMeetsEveryValueAndEveryPairOfConvolutionDimensions() {
    List<int[]> rows = KernelParity.suiteConvRows();
    assertThat(Pairwise.missingPairs(KernelParity.CONV_FACTORS, KernelParity.convUnder(SUITE_MACS), rows)).isEmpty();
    long product = KernelParity.CONV_FACTORS.stream().mapToLong(f -> f.length).reduce(1, (a, b) -> a * b);
    System.out.printf("suite design: %d convolution cases for a full product of %d%n", rows.size(), product);
    assertThat(rows.size()).isLessThan((int) (product / 100));
    assertThat(rows).allMatch(r -> KernelParity.conv(r).macs() <= SUITE_MACS);
    // The suite runs exactly these rows.
    List<KernelParity.Case> convolutions = KernelParity.suiteDesign().stream()
        .filter(c -> c.layer() == KernelParity.Layer.CONV).toList();
    assertThat(convolutions).containsExactlyElementsOf(rows.stream().map(KernelParity::conv).toList());
  }

  /** The cost cap exempts no pair from coverage: each is checked with the other dimensions at their cheapest. */
  @Test
  void everyPairOfValuesMustBeCovered() {
    List<int[]> factors = KernelParity.CONV_FACTORS;
    int pairs = 0;
    for (int a = 0; a < factors.size(); a++) {
      for (int b = a + 1; b < factors.size(); b++) {
        pairs += factors.get(a).length * factors.get(b).length;
      }
    }
    assertThat(Pairwise.missingPairs(factors, KernelParity.convUnder(SUITE_MACS), List.of())).hasSize(pairs);
  }

  @Test
  void aDesignWithoutTheOddChannelCountsIsCaughtByTheCoverageCheck() {
    List<int[]> rows = new ArrayList<>(KernelParity.suiteConvRows());
    rows.removeIf(r -> r[0] == 51 || r[0] == 13);
    assertThat(Pairwise.missingPairs(KernelParity.CONV_FACTORS, KernelParity.convUnder(SUITE_MACS), rows))
        .contains("0=51, 1=1", "0=13, 7=1");
  }

  @Test
  void denseLayersAreCoveredPairwiseToo() {
    List<int[]> rows = new ArrayList<>();
    for (KernelParity.Case c : KernelParity.suiteDesign()) {
      if (c.layer() == KernelParity.Layer.LINEAR) {
        rows.add(new int[] {c.in(), c.out(), c.batch(), c.source().ordinal()});
      }
    }
    assertThat(Pairwise.missingPairs(KernelParity.DENSE_FACTORS, r -> true, rows)).isEmpty();
  }

  @Test
  void caseLabelsReadBack() {
    for (KernelParity.Case c : KernelParity.suiteDesign()) {
      assertThat(KernelParity.Case.parse(c.label())).isEqualTo(c);
    }
  }
}
