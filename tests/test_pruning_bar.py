"""benchmarks/pruning_bar.py: the median pruner's bar (over complete trials only) against the confirmation's units."""

from __future__ import annotations

import subprocess
import sys

import optuna

from benchmarks.pruning_bar import bar, candidates_at
from vmpo_tune import records

from .search_helpers import ROOT

STEP = 300


def _trial(value, at_step, state="COMPLETE", **attrs):
    return optuna.trial.create_trial(
        value=value if state == "COMPLETE" else None,
        intermediate_values={100: 1.0, STEP: at_step},
        state=optuna.trial.TrialState[state],
        user_attrs=attrs,
    )


def test_the_bar_is_the_complete_trials_median_and_each_candidate_is_counted_against_it(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    search = optuna.create_study(study_name="s", storage=url, direction="maximize")
    # complete trials at STEP: 10, 40, 20, 30 (median 25); a pruned trial's 1,000 does not count, as in Optuna
    for value, at_step, state in [(5, 10, "COMPLETE"), (6, 40, "COMPLETE"), (1, 1000, "PRUNED"), (7, 20, "COMPLETE"),
                                  (8, 30, "COMPLETE")]:  # fmt: skip
        search.add_trial(_trial(value, at_step, state))
    assert bar(search, STEP) == (25.0, 4)
    assert bar(search, STEP, below=3) == (25.0, 2)  # trials 0 and 1 (10 and 40); trial 2 was pruned
    assert bar(search, STEP, below=2) == (25.0, 2) and bar(search, STEP, below=1) == (10.0, 1)

    confirm = optuna.create_study(study_name=records.confirm_study_name("s"), storage=url, direction="maximize")
    units = [("trial 3", 1001, 26.0), ("trial 3", 1000, 24.0), ("default", 1000, 5.0), ("trial 3", 1002, 50.0)]
    for label, seed, at_step in units:
        confirm.add_trial(_trial(1.0, at_step, **{records.CANDIDATE: label, records.SEEDS: [seed]}))
    confirm.add_trial(_trial(1.0, 0.0, "FAIL", **{records.CANDIDATE: "default", records.SEEDS: [1001]}))
    assert candidates_at(confirm, STEP) == {"trial 3": [24.0, 26.0, 50.0], "default": [5.0]}  # seed order

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pruning_bar.py"), str(tmp_path / "s.db"), "--step", str(STEP)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    assert "bar at 300 steps: 25.0 (median of 4 complete trials)" in out
    assert "trial 3: pruned on 1 of 3 test seeds; at 300 steps: 24 26 50" in out
    assert "default: pruned on 1 of 1 test seeds" in out
