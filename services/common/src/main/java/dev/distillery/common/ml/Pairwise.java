package dev.distillery.common.ml;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.function.Predicate;

/**
 * Pairwise covering designs, built greedily (AETG, Cohen et al. 1997): rows of factor values in
 * which every value of every factor, and every pair of values of two factors, appears at least
 * once, in far fewer rows than the full product. A constraint may rule rows out (too costly, say);
 * the first value of each factor must be its least demanding, because unfilled factors are tested
 * at it.
 */
final class Pairwise {
  private static final int CANDIDATES = 24;

  private Pairwise() {}

  /** Rows (one value of each factor, in factor order) covering every allowed pair. */
  static List<int[]> cover(List<int[]> factors, Predicate<int[]> allowed, long seed) {
    Random random = new Random(seed);
    int n = factors.size();
    boolean[][][][] open = new boolean[n][n][][];
    List<int[]> pairs = new ArrayList<>();
    for (int a = 0; a < n; a++) {
      for (int b = a + 1; b < n; b++) {
        open[a][b] = new boolean[factors.get(a).length][factors.get(b).length];
        for (int va = 0; va < factors.get(a).length; va++) {
          for (int vb = 0; vb < factors.get(b).length; vb++) {
            int[] probe = new int[n];
            probe[a] = va;
            probe[b] = vb;
            if (allowed.test(values(factors, probe))) {
              open[a][b][va][vb] = true;
              pairs.add(new int[] {a, b, va, vb});
            }
          }
        }
      }
    }
    List<int[]> rows = new ArrayList<>();
    int remaining = pairs.size();
    while (remaining > 0) {
      int[] seedPair = pairs.stream().filter(p -> open[p[0]][p[1]][p[2]][p[3]]).findFirst().orElseThrow();
      int[] best = null;
      int bestGain = -1;
      for (int candidate = 0; candidate < CANDIDATES; candidate++) {
        int[] row = complete(factors, allowed, open, seedPair, random);
        int gain = gain(open, row, n);
        if (gain > bestGain) {
          best = row;
          bestGain = gain;
        }
      }
      for (int a = 0; a < n; a++) {
        for (int b = a + 1; b < n; b++) {
          if (open[a][b][best[a]][best[b]]) {
            open[a][b][best[a]][best[b]] = false;
            remaining--;
          }
        }
      }
      rows.add(values(factors, best));
    }
    return rows;
  }

  /** Fills the factors other than the seed pair's, in random order, each with the allowed value covering most open pairs. */
  private static int[] complete(List<int[]> factors, Predicate<int[]> allowed, boolean[][][][] open, int[] pair,
      Random random) {
    int n = factors.size();
    int[] row = new int[n];
    boolean[] fixed = new boolean[n];
    row[pair[0]] = pair[2];
    row[pair[1]] = pair[3];
    fixed[pair[0]] = fixed[pair[1]] = true;
    List<Integer> order = new ArrayList<>();
    for (int f = 0; f < n; f++) {
      if (!fixed[f]) {
        order.add(f);
      }
    }
    Collections.shuffle(order, random);
    for (int f : order) {
      int bestValue = 0;
      int bestGain = -1;
      for (int v = 0; v < factors.get(f).length; v++) {
        row[f] = v;
        if (!allowed.test(values(factors, row))) {
          continue;
        }
        int gain = 0;
        for (int g = 0; g < n; g++) {
          if (fixed[g] && g != f) {
            gain += (g < f ? open[g][f][row[g]][v] : open[f][g][v][row[g]]) ? 1 : 0;
          }
        }
        // Random tie-breaking spreads the values the greedy choice does not care about.
        if (gain > bestGain || (gain == bestGain && random.nextBoolean())) {
          bestGain = gain;
          bestValue = v;
        }
      }
      row[f] = bestValue;
      fixed[f] = true;
    }
    return row;
  }

  /** The allowed pairs of values that no row holds, each as "factor=value, factor=value" (by index). */
  static List<String> missingPairs(List<int[]> factors, Predicate<int[]> allowed, List<int[]> rows) {
    List<String> missing = new ArrayList<>();
    int n = factors.size();
    for (int a = 0; a < n; a++) {
      for (int b = a + 1; b < n; b++) {
        for (int va : factors.get(a)) {
          for (int vb : factors.get(b)) {
            int[] probe = new int[n];
            for (int f = 0; f < n; f++) {
              probe[f] = factors.get(f)[0];
            }
            probe[a] = va;
            probe[b] = vb;
            final int fa = a;
            final int fb = b;
            if (allowed.test(probe) && rows.stream().noneMatch(r -> r[fa] == va && r[fb] == vb)) {
              missing.add(a + "=" + va + ", " + b + "=" + vb);
            }
          }
        }
      }
    }
    return missing;
  }

  private static int gain(boolean[][][][] open, int[] row, int n) {
    int gain = 0;
    for (int a = 0; a < n; a++) {
      for (int b = a + 1; b < n; b++) {
        gain += open[a][b][row[a]][row[b]] ? 1 : 0;
      }
    }
    return gain;
  }

  private static int[] values(List<int[]> factors, int[] indices) {
    int[] values = new int[indices.length];
    for (int f = 0; f < indices.length; f++) {
      values[f] = factors.get(f)[indices[f]];
    }
    return values;
  }
}
