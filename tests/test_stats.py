"""Confirmation statistics against values computed by hand, and the seed-aware pruner's bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmpo_tune.schedules import lr_factor
from vmpo_tune.search.pruning import upper_bound
from vmpo_tune.stats import (
    aggregate,
    bootstrap_ci,
    check_objective,
    curve_value,
    describe,
    iqm,
    poi_ci,
    probability_of_improvement,
    rank,
    separated_from,
)


def test_iqm_of_known_arrays():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # drops 1, 2 and 7, 8: mean of 3..6
    assert iqm([100, 1, 3, 2, 4]) == 3.0  # n = 5 drops one at each end: mean of 2, 3, 4
    assert iqm([5.0]) == 5.0 and iqm([1, 2, 3]) == 2.0  # fewer than 4 values: nothing dropped
    assert iqm(list(range(10))) == 4.5  # n = 10 drops 2 at each end (floor(10 / 4)), as rliable does
    assert aggregate([0, 10, 20, 1000], "iqm") == 15.0 and aggregate([3, 1, 2], "median") == 2.0
    with pytest.raises(ValueError, match="mean, median, min, iqm"):
        aggregate([1.0], "max")


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(0)
    population = rng.normal(1000.0, 300.0, size=400)
    widths = []
    for n in (5, 20, 80):
        x = population[:n]
        low, high = bootstrap_ci(x, "iqm")
        assert low <= iqm(x) <= high
        low_m, high_m = bootstrap_ci(x, "mean")
        assert low_m <= float(np.mean(x)) <= high_m
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert bootstrap_ci([7.0]) == (7.0, 7.0) and bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)


def test_bootstrap_is_repeatable():
    x = [120.0, 900.0, 1010.0, 2400.0, 2600.0]
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)


def test_probability_of_improvement_by_hand():
    same = [1.0, 2.0, 3.0]
    assert probability_of_improvement(same, same) == 0.5  # identical samples: no improvement either way
    low, high = poi_ci(same, same)
    assert low < 0.5 < high
    assert probability_of_improvement([10, 11], [1, 2]) == 1.0 and probability_of_improvement([1, 2], [10, 11]) == 0.0
    # x = [1, 2], y = [2, 3]: of the four pairs only (2, 2) ties (1/2), none wins: 0.5 / 4
    assert probability_of_improvement([1, 2], [2, 3]) == 0.125
    assert poi_ci([10, 11, 12], [1, 2, 3]) == (1.0, 1.0)


def test_candidate_statistics_and_verdicts():
    baseline = [1000.0, 990.0, 1010.0, 400.0, 1005.0]
    better = describe("trial 7", [1, 2, 3, 4, 5], [2500, 2600, 2700, 2550, 2650], baseline, search_score=3200.0)
    assert better.iqm == pytest.approx(2600.0) and better.mean == pytest.approx(2600.0) and better.median == 2600.0
    assert (better.min, better.max, better.n) == (2500.0, 2700.0, 5)
    assert better.poi == 1.0 and better.vs_baseline == "better"
    assert better.optimism == pytest.approx(600.0)
    base = describe("default", [1, 2, 3, 4, 5], baseline, baseline, is_baseline=True)
    assert base.poi == 0.5 and base.vs_baseline == "baseline"
    noisy = describe("trial 9", [1, 2, 3, 4, 5], [3000, 300, 2900, 250, 1000], baseline)
    assert noisy.vs_baseline == "unresolved"
    ranked = rank([base, noisy, better])
    assert [c.label for c in ranked] == ["trial 7", "trial 9", "default"]  # IQMs 2600, 1400, 998.3
    assert separated_from(base, better) and not separated_from(noisy, base)
    data = better.as_dict()
    assert data["iqm_ci"][0] <= data["iqm"] <= data["iqm_ci"][1] and data["vs_baseline"] == "better"


def test_seed_bound_of_the_pruner_by_hand():
    # seeds 100, 200, 300: mean 200, sd 100, standard error 100 / sqrt(3)
    assert upper_bound([100.0, 200.0, 300.0], 200.0, 1.0) == pytest.approx(200.0 + 100.0 / math.sqrt(3))
    assert upper_bound([100.0, 200.0, 300.0], 200.0, 0.0) == pytest.approx(200.0)
    assert upper_bound([150.0], 150.0, 1.0) == 150.0  # one seed: the plain value


def test_learning_rate_schedules_by_hand():
    assert lr_factor("constant", 0.7, 0.0) == 1.0
    assert lr_factor("linear", 0.0, 0.1) == 1.0 and lr_factor("linear", 1.0, 0.1) == pytest.approx(0.1)
    assert lr_factor("linear", 0.25, 0.0) == pytest.approx(0.75)
    assert lr_factor("cosine", 0.5, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)  # cos(pi / 2) = 0
    assert lr_factor("cosine", 1.0, 0.0) == pytest.approx(0.0) and lr_factor("cosine", 2.0, 0.2) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="constant, linear, cosine"):
        lr_factor("step", 0.5, 0.0)


def test_curve_objectives_on_hand_made_learning_curves():
    # a run that peaks early and collapses, and a steady one with the same final return
    collapse, steady = [100.0, 900.0, 800.0, 300.0], [200.0, 250.0, 280.0, 300.0]
    assert curve_value(collapse, "final") == 300.0 == curve_value(steady, "final")
    assert curve_value(collapse, "best") == 900.0
    assert curve_value(collapse, "auc") == (100 + 900 + 800 + 300) / 4 == 525.0
    assert curve_value(steady, "auc") == 257.5
    assert curve_value(collapse, "last_2") == 550.0
    assert curve_value(steady, "last_3") == (250 + 280 + 300) / 3
    assert curve_value([5.0], "last_3") == 5.0  # fewer evaluations than K: all of them
    assert curve_value(steady, "last_1") == curve_value(steady, "final")
    assert math.isnan(curve_value([], "auc"))


@pytest.mark.parametrize("bad", ["last_0", "last_", "last_k", "mean", "", "last_-1", None])
def test_unknown_objectives_are_refused_with_the_valid_forms(bad):
    with pytest.raises(ValueError, match="last_3"):
        check_objective(bad)


def test_objective_names_are_canonical():
    assert check_objective("last_03") == "last_3"
    assert [check_objective(o) for o in ("final", "best", "auc")] == ["final", "best", "auc"]
