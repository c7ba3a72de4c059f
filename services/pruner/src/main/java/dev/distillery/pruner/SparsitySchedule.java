package dev.distillery.pruner;

import dev.distillery.schemas.PruningSettings;

/**
 * Zhu and Gupta's gradual pruning schedule (2017), counted in pruning steps: step k of n prunes to
 * {@code s_k = s_f + (s_i - s_f)(1 - k/n)^3}, so sparsity rises fast while the network has
 * redundancy to spare and slowly near the target. With n = 1 it is one-shot pruning.
 */
final class SparsitySchedule {
  private SparsitySchedule() {}

  /** The sparsity of step {@code step} (1..n) towards {@code target}; the last step gives the target exactly. */
  static double at(int step, PruningSettings settings, double target) {
    int steps = settings.getSteps();
    if (step >= steps) {
      return target;
    }
    double left = 1 - (double) step / steps;
    return target + (settings.getInitialSparsity() - target) * left * left * left;
  }
}
