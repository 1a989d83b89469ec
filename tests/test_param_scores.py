"""benchmarks/param_scores.py: complete trials' scores grouped by one parameter, the companion study ignored."""

from __future__ import annotations

import optuna

from benchmarks.param_scores import grouped


def test_scores_are_grouped_by_value_sorted_and_only_complete_trials_count(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    optuna.create_study(study_name="s/confirm", storage=url)  # a confirmation's companion study beside it
    dist = {"m_steps": optuna.distributions.CategoricalDistribution([8, 16])}
    for m, value, state in [(16, 3.0, "COMPLETE"), (8, 5.0, "COMPLETE"), (16, 1.0, "COMPLETE"), (8, 9.0, "PRUNED")]:
        study.add_trial(
            optuna.trial.create_trial(
                params={"m_steps": m},
                distributions=dist,
                value=value if state == "COMPLETE" else None,
                intermediate_values={1: value},
                state=optuna.trial.TrialState[state],
            )
        )
    assert grouped(url, "m_steps") == {8: [5.0], 16: [1.0, 3.0]}
    assert grouped(url, "policy_lr") == {}
