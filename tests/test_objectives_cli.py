"""The averaging objectives end to end: a search stores the mean of each trial's learning curve, and its
confirmation measures the same statistic (plus the final return) on test seeds chosen with --test-seed-start."""

from __future__ import annotations

import optuna

from .search_helpers import TOY_STUDY, cli, load, write_study


def test_auc_search_and_its_confirmation_measure_the_curve_mean(tmp_path):
    study = {**TOY_STUDY, "total_steps": 768, "objective": "auc", "sampler": {"name": "random"}}
    write_study(tmp_path, study)
    url = f"sqlite:///{tmp_path / 'runs' / 'study.db'}"
    run = cli(
        "vmpo_tune.search", "--study", "toy.yaml", "--trials", "2", "--out", "runs", "--pruner", "none", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    stored = load(url)
    assert "mean evaluation return over the whole run (auc)" in run.stderr + run.stdout
    for trial in stored.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        curve = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
        assert len(curve) == 3  # evaluations at 256, 512, 768
        assert trial.value == sum(curve) / 3  # one seed: the mean of its own curve, exactly
        assert trial.user_attrs["seed_returns"] == [curve[-1]]  # the final return is kept beside it
    confirm = cli(
        "vmpo_tune.confirm",
        *("--study", "toy", "--run-dir", "runs", "--top", "1", "--seeds", "2", "--test-seed-start", "500"),
        cwd=tmp_path,
    )
    assert confirm.returncode == 0, confirm.stderr
    assert "IQM [95% CI] (auc)" in confirm.stdout and "final IQM" in confirm.stdout
    units = optuna.load_study(study_name="toy/confirm", storage=url).get_trials()
    assert sorted({t.user_attrs["seeds"][0] for t in units}) == [500, 501]
    for unit in units:
        curve = [unit.intermediate_values[step] for step in sorted(unit.intermediate_values)]
        assert unit.value == sum(curve) / len(curve)


def test_test_seeds_that_overlap_the_tuning_seeds_are_refused(tmp_path):
    write_study(tmp_path)
    assert (
        cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "1", "--out", "runs", cwd=tmp_path).returncode == 0
    )
    bad = cli("vmpo_tune.confirm", "--study", "toy", "--run-dir", "runs", "--test-seed-start", "0", cwd=tmp_path)
    assert bad.returncode == 2
    assert "overlap the study's tuning seeds" in bad.stderr
    assert optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'runs' / 'study.db'}")
    names = optuna.get_all_study_names(storage=f"sqlite:///{tmp_path / 'runs' / 'study.db'}")
    assert names == ["toy"]  # nothing was planned


def test_a_bad_objective_is_one_line_and_exit_2(tmp_path):
    write_study(tmp_path, {**TOY_STUDY, "objective": "last_k"})
    run = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "1", "--out", "runs", cwd=tmp_path)
    assert run.returncode == 2
    assert "objective" in run.stderr and "last_3" in run.stderr and "Traceback" not in run.stderr
    write_study(tmp_path)
    flag = cli("vmpo_tune.search", "--study", "toy.yaml", "--objective", "avg", "--trials", "1", cwd=tmp_path)
    assert flag.returncode == 2 and "--objective" in flag.stderr
    assert not (tmp_path / "runs").exists()
