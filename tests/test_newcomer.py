"""What a newcomer meets in the first hour: one-line flag errors, hints that work as printed, units named by
their candidate, a finished run never thrown away by the pruner, and time estimates that survive a resume."""

from __future__ import annotations

import shlex
import time

import optuna
import pytest
from optuna.trial import TrialState

from vmpo_tune import next_steps, records
from vmpo_tune.config import RunConfig, TrainConfig, VMPOConfig
from vmpo_tune.search.cli import seconds_per_trial
from vmpo_tune.search.progress import ProgressDisplay
from vmpo_tune.search.runner import RunPlan, TrialRunner

from .search_helpers import CALM, cli, write_study


@pytest.mark.parametrize(
    ("module", "needed"),
    [
        ("vmpo_tune.search", "--study"),
        ("vmpo_tune.confirm", "--study"),
        ("vmpo_tune.train", "--config"),
        ("vmpo_tune.play", "--study"),
        ("vmpo_tune.export", "--study"),
        ("vmpo_tune.adopt", "--study"),
    ],
)
def test_a_bad_flag_is_one_line_without_the_usage_block(tmp_path, module, needed):
    missing = cli(module, cwd=tmp_path)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert needed in missing.stderr and "--help" in missing.stderr
    run = cli(module, needed, "x", "--no-such-flag", cwd=tmp_path)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ") and "--no-such-flag" in lines[0] and "--help" in lines[0]


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


@pytest.mark.parametrize(("total", "state"), [(256, TrialState.COMPLETE), (512, TrialState.PRUNED)])
def test_the_pruner_never_throws_away_a_run_that_reached_its_budget(tmp_path, total, state):
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    agent = VMPOConfig(policy_layer_sizes=(8,), value_layer_sizes=(8,))
    train = TrainConfig(env_id="tests.toy_envs:Survive-v0", num_envs=1, rollout_steps=64, eval_interval=256)
    plan = RunPlan(RunConfig(agent, train, total), (0,))

    def objective(trial):
        return TrialRunner(tmp_path / str(total)).run(trial, plan)

    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == state
    assert max(trial.intermediate_values) == 256  # pruned at the first mark when it is not the last


def test_the_eta_does_not_count_a_resumed_trials_earlier_steps(monkeypatch):
    study = optuna.create_study(direction="maximize")
    resumed = study.ask()
    resumed.set_user_attr(records.RESUMED_FROM, 200_000)
    display = ProgressDisplay(study, n_trials=2, steps_per_trial=300_000, stream=open("/dev/null", "w"))  # noqa: SIM115
    display.start = time.monotonic() - 100.0  # 100 s into this run
    display._poll([(resumed.number, 210_000)])
    # this run trained 10k steps in 100 s (100 steps/s); left: 90k of the running trial + 300k of the other
    eta = display._eta
    assert eta.startswith("ETA 1:0"), eta  # (90k + 300k) / 100 = 3,900 s = 1:05:00, give or take the clock
    hours, minutes, _ = (int(x) for x in eta.split()[1].split(":"))
    assert 3_800 <= hours * 3600 + minutes * 60 <= 3_960


def _finished(number, wall, trained, resumed_from=0, seeds=1):
    attrs = {records.WALL_TIME: wall, records.ENV_STEPS_TRAINED: trained, records.SEEDS: list(range(seeds))}
    if resumed_from:
        attrs[records.RESUMED_FROM] = resumed_from
    return optuna.trial.create_trial(value=1.0, user_attrs=attrs)


def test_seconds_per_trial_counts_what_a_resumed_trial_ran_before():
    # a fresh trial: 300k steps in 100 s; a resumed one: its last 30k steps in 10 s (it ran 270k before)
    trials = [_finished(0, 100.0, 300_000), _finished(1, 10.0, 30_000, resumed_from=270_000)]
    # 110 s for 330k trained steps: 1/3,000 s per step; each trial ran 300k steps in all -> 100 s per trial
    assert seconds_per_trial(trials) == pytest.approx(100.0)
    assert seconds_per_trial([]) is None


def test_hints_after_a_search_work_as_printed_and_units_are_named_by_candidate(tmp_path):
    write_study(tmp_path, CALM)
    search = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "3", "--out", "somewhere", cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    hints = [line.split("next: ", 1)[1] for line in search.stderr.splitlines() if "next: " in line]
    assert [h.split(":", 1)[0] for h in hints] == [
        "confirm the best 3 on fresh seeds",
        "read the report",
        "take the winner",
        "train it again",
        "watch it",
    ]
    commands = [shlex.split(h.split(":", 1)[1].split("(")[0]) for h in hints]
    assert all(c[:2] == ["python", "-m"] for c in commands[:1] + commands[2:4])
    assert "--run-dir" in commands[0] and "somewhere" in commands[0]  # a non-default --out is carried along
    assert ("--video" in commands[4]) == next_steps.can_film()
    for command in commands[:4]:
        if command[2] == "analysis.report" and command[0] != "python":
            continue
        run = cli(command[2], *command[3:], cwd=tmp_path)
        assert run.returncode == 0, (command, run.stderr)
        if command[2] == "vmpo_tune.confirm":
            assert "unit 0: " in run.stderr and " on seed 1000" in run.stderr  # a unit, its candidate and seed
            assert "next: take the winner" in run.stderr and "confirm the best" not in run.stderr
    assert (tmp_path / "toy-best.yaml").exists()
    # the next hint never names a file that exists (export refuses to overwrite)
    again = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "3", "--out", "somewhere", cwd=tmp_path)
    assert "--out toy-best-2.yaml" in again.stderr
