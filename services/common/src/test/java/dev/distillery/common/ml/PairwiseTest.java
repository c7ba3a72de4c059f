package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PairwiseTest {

  /** The suite's convolution cases as rows of factor values, in KernelParity.CONV_FACTORS order. */
  private static List<int[]> convRows(List<KernelParity.Case> cases) {
    List<int[]> rows = new ArrayList<>();
    for (KernelParity.Case c : cases) {
      if (c.layer() == KernelParity.Layer.CONV) {
        rows.add(new int[] {c.in(), c.out(), c.kernel(), c.stride(), c.padding() == 0 ? 0 : 1, c.width(), c.batch(),
            c.source().ordinal()});
      }
    }
    return rows;
  }

  @Test
  void suiteDesignMeetsEveryValueAndEveryPairOfConvolutionDimensions() {
    List<int[]> rows = convRows(KernelParity.suiteDesign());
    assertThat(Pairwise.missingPairs(KernelParity.CONV_FACTORS, KernelParity.convUnder(40_000_000L), rows)).isEmpty();
    long product = KernelParity.CONV_FACTORS.stream().mapToLong(f -> f.length).reduce(1, (a, b) -> a * b);
    System.out.printf("suite design: %d convolution cases for a full product of %d%n", rows.size(), product);
    assertThat(rows.size()).isLessThan((int) (product / 100));
    assertThat(rows).allMatch(r -> KernelParity.conv(r).macs() <= 40_000_000L);
  }

  @Test
  void aDesignWithoutTheOddChannelCountsIsCaughtByTheCoverageCheck() {
    List<int[]> rows = convRows(KernelParity.suiteDesign());
    rows.removeIf(r -> r[0] == 51 || r[0] == 13);
    assertThat(Pairwise.missingPairs(KernelParity.CONV_FACTORS, KernelParity.convUnder(40_000_000L), rows))
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
