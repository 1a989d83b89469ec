"""One typed shape per stored thing: the run configuration, the confirmation statistics, the study's record and
the run file each go to their stored form and back unchanged; stored forms written before still read; a run file
of an unknown or newer format is refused in one line; a trial's start and outcome are each written once."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

from vmpo_tune import records
from vmpo_tune.config import RunConfig, TrainConfig, VMPOConfig
from vmpo_tune.errors import UserError
from vmpo_tune.runfile import FORMAT, load_run, parse_run
from vmpo_tune.search.runner import RunPlan, TrialRunner
from vmpo_tune.stats import CandidateStats, describe

from .search_helpers import cli

BEFORE = Path(__file__).parent / "data" / "run-config-2.yaml"
"""A run file exported by the code before these shapes were typed (commit 01b5304)."""

TOY = RunConfig(
    VMPOConfig(policy_layer_sizes=(8,), value_layer_sizes=(8,), m_steps=2),
    TrainConfig(env_id="tests.toy_envs:Survive-v0", num_envs=1, rollout_steps=64, eval_interval=128, seed=3),
    256,
)


def test_a_run_configuration_round_trips_through_its_stored_form_and_json():
    stored = json.loads(json.dumps(TOY.to_dict()))  # what a storage gives back
    assert stored == {"agent": TOY.agent.to_dict(), "train": TOY.train.to_dict(), "total_steps": 256}
    assert RunConfig.from_dict(stored) == TOY
    assert RunConfig.from_dict(stored).agent.policy_layer_sizes == (8,)  # lists come back as the config's tuples


def test_the_identity_of_a_configuration_ignores_seed_device_eval_seed_and_budget_only():
    other_seed = dataclasses.replace(TOY, train=dataclasses.replace(TOY.train, seed=99, eval_seed=5))
    assert other_seed.identity() == TOY.identity()
    assert dataclasses.replace(TOY, total_steps=512).identity() == TOY.identity()
    other_lr = dataclasses.replace(TOY, agent=dataclasses.replace(TOY.agent, policy_lr=1e-3))
    other_envs = dataclasses.replace(TOY, train=dataclasses.replace(TOY.train, num_envs=2))
    assert len({TOY.identity(), other_lr.identity(), other_envs.identity()}) == 3


def test_a_configuration_stored_before_matmul_precision_keeps_its_identity():
    stored = json.loads(json.dumps(TOY.to_dict()))
    del stored["agent"]["matmul_precision"], stored["agent"]["acting"]  # what a trial stored before them holds
    before = RunConfig.from_dict(stored)
    # the identity (which confirmations match units by) of the key the JSON of that time gave
    then = {
        "agent": stored["agent"],
        "train": {k: v for k, v in stored["train"].items() if k not in ("seed", "eval_seed", "device")},
    }
    assert before.identity() == TOY.identity() == json.dumps(then, sort_keys=True)
    medium = dataclasses.replace(TOY, agent=dataclasses.replace(TOY.agent, matmul_precision="medium"))
    assert medium.identity() != TOY.identity() and '"matmul_precision": "medium"' in medium.identity()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("train"), r"missing \['train'\]"),
        (lambda d: d.update(budget=1), r"unknown key\(s\) \['budget'\]"),
        (lambda d: d["agent"].update(learning_rate=1), r"unknown VMPOConfig key\(s\) \['learning_rate'\]"),
        (lambda d: d.update(total_steps=0), "total_steps"),
    ],
)
def test_a_malformed_stored_configuration_names_what_is_wrong(change, message):
    data = json.loads(json.dumps(TOY.to_dict()))
    change(data)
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(data)


def test_the_confirmation_statistics_round_trip_and_old_ones_read():
    stats = describe("trial 4", [1000, 1001, 1002, 1003], [10.0, 30.0, 20.0, 50.0], [5.0, 5.0, 25.0, 5.0], seed=1)
    stored = json.loads(json.dumps(stats.as_dict()))
    back = CandidateStats.from_dict(stored)
    assert back == stats and back.iqm_ci == stats.iqm_ci and isinstance(back.iqm_ci, tuple)
    assert back.n == 4 and back.vs_baseline == stats.vs_baseline
    # stored before the objective existed: the final return was the only statistic
    legacy = {k: v for k, v in stored.items() if k not in ("objective", "final_returns", "final_iqm")}
    old = CandidateStats.from_dict(legacy)
    assert old.objective == "final" and old.final_returns == [10.0, 30.0, 20.0, 50.0]
    assert old.final_iqm == pytest.approx(25.0)  # the middle two of 10, 20, 30, 50


def test_a_study_record_with_its_default_configuration_round_trips():
    info = records.StudyInfo(name="toy", env_id="Hopper-v5", total_steps=256, default_config=TOY)
    attrs = json.loads(json.dumps(info.to_attrs()))
    assert attrs["default_config"] == TOY.to_dict()
    assert records.StudyInfo.from_attrs(attrs) == info
    assert records.StudyInfo.from_attrs({**attrs, "default_config": None}).default_config is None


def test_a_confirmation_plan_round_trips_and_one_stored_before_the_objective_reads_as_final():
    plan = records.ConfirmPlan(
        300_000,
        "auc",
        (1000, 1001),
        (
            records.PlannedCandidate("trial 4", 4, 812.5, False, "a1"),
            records.PlannedCandidate("default", None, None, True, "b2"),
        ),
    )
    attrs = json.loads(json.dumps(plan.to_attrs()))
    assert records.ConfirmPlan.from_attrs(attrs) == plan and plan.baseline.label == "default"
    old = records.ConfirmPlan.from_attrs({k: v for k, v in attrs.items() if k != "objective"})
    assert old.objective == "final" and old.candidates == plan.candidates
    assert records.ConfirmPlan.from_attrs({}) == records.ConfirmPlan() and records.ConfirmPlan().baseline is None


def test_a_trial_whose_stored_configuration_cannot_be_read_is_a_one_line_error():
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr(records.CONFIG, {"agent": {"no_such_field": 1}, "train": {}, "total_steps": 5})
    with pytest.raises(UserError, match=r"trial 0's configuration is not one this version .* release that wrote it"):
        records.read_config(study.trials[0])


# ---------------------------------------------------------------------------- run files


def test_a_run_file_exported_before_the_typed_shapes_still_loads():
    run = load_run(BEFORE)
    assert run.study == "toy" and run.trial == 0 and run.seeds == (0,)
    assert run.config.total_steps == 512 and run.config.train.env_id == "tests.toy_envs:Survive-v0"
    doc = yaml.safe_load(BEFORE.read_text())
    assert run.config.agent == VMPOConfig.from_dict(doc["runs"][0]["agent"])
    assert run.used_seeds == (0, 1000, 1001)


def test_version_1_reads_and_newer_unknown_or_missing_formats_are_refused_with_the_fix():
    doc = yaml.safe_load(BEFORE.read_text())
    assert parse_run({**doc, "format": "vmpo-tune/run-config/1"}, "old.yaml").config.total_steps == 512
    newer = FORMAT.rsplit("/", 1)[0] + "/3"
    with pytest.raises(UserError, match=rf"new\.yaml: format {newer} was written by a newer vmpo-tune.*upgrade"):
        parse_run({**doc, "format": newer}, "new.yaml")
    with pytest.raises(UserError, match=r"other\.yaml: format 'someone-else/7' is not a vmpo-tune run file format"):
        parse_run({**doc, "format": "someone-else/7"}, "other.yaml")
    with pytest.raises(UserError, match=rf"bare\.yaml: format: missing; .*'format: {FORMAT}'"):
        parse_run({k: v for k, v in doc.items() if k != "format"}, "bare.yaml")


def test_train_refuses_a_run_file_from_a_newer_version_in_one_line(tmp_path):
    doc = yaml.safe_load(BEFORE.read_text())
    (tmp_path / "new.yaml").write_text(yaml.safe_dump({**doc, "format": "vmpo-tune/run-config/99"}))
    proc = cli("vmpo_tune.train", "--config", "new.yaml", "--out", "t", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "newer vmpo-tune" in proc.stderr
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------------------- the runner's writes


class _Stop(Exception):
    pass


def _counted_run(tmp_path: Path, stop_after: int | None) -> tuple[optuna.trial.FrozenTrial, Counter]:
    """Run TOY as one trial (stopped after ``stop_after`` updates if given); count each user attribute's writes."""
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    writes: Counter = Counter()
    set_user_attr = trial.set_user_attr

    def counting(key, value):
        writes[key] += 1
        set_user_attr(key, value)

    trial.set_user_attr = counting
    calls = iter(range(10**6))

    def check():
        if stop_after is not None and next(calls) >= stop_after:
            raise _Stop

    runner = TrialRunner(tmp_path, interrupt_check=check)
    try:
        value = runner.run(trial, RunPlan(TOY, (TOY.train.seed,)))
        study.tell(trial, value)
    except _Stop:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study.trials[0], writes


def test_a_trial_writes_its_start_and_its_outcome_once_each(tmp_path):
    trial, writes = _counted_run(tmp_path, None)
    once = (records.CONFIG, records.SEEDS, records.PROVENANCE, records.RESUMED_FROM, records.RESUME_EXACT)
    outcome = (records.WALL_TIME, records.COMPUTE_CPU, records.ENV_STEPS_TRAINED, records.ENV_STEPS_PER_S)
    returns = (records.SEED_RETURNS, records.SEED_BEST_RETURNS)
    assert all(writes[k] == 1 for k in (*once, *outcome, *returns)), writes
    assert set(writes) == {*once, *outcome, *returns}  # one seed, no artifact store: no per-seed curve or resume
    assert records.read_config(trial) == TOY and trial.user_attrs[records.ENV_STEPS_TRAINED] == 256
    record = records.TrialRecord.of(trial)
    assert record.seed_returns == [round(trial.value, 3)] and record.resumed_from_env_steps == 0
    assert sorted(trial.intermediate_values) == [128, 256]


def _burn(cpu_s: float) -> None:
    """Spend ``cpu_s`` seconds of this thread's CPU."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


def test_a_trials_compute_cpu_is_its_training_and_not_its_storage_calls(tmp_path):
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    report = trial.report
    trial.report = lambda value, step: (_burn(0.2), report(value, step))  # a slow storage: 0.2 CPU-s per report
    before = time.thread_time()
    study.tell(trial, TrialRunner(tmp_path).run(trial, RunPlan(TOY, (TOY.train.seed,))))
    spent = time.thread_time() - before  # all of the run's CPU in this thread, the two reports' 0.4 s included
    compute = study.trials[0].user_attrs[records.COMPUTE_CPU]
    assert 0 < compute <= spent - 0.4 + 0.001  # rounded to 1 ms when stored
    assert compute <= study.trials[0].user_attrs[records.WALL_TIME] + 0.01


def test_an_attempt_that_stops_early_records_its_time_and_steps_but_no_returns(tmp_path):
    trial, writes = _counted_run(tmp_path, 2)  # stopped after the third update (64 steps each)
    assert writes[records.WALL_TIME] == 1 and writes[records.ENV_STEPS_TRAINED] == 1
    assert records.SEED_RETURNS not in trial.user_attrs and records.SEED_BEST_RETURNS not in trial.user_attrs
    assert trial.user_attrs[records.ENV_STEPS_TRAINED] == 192 and not math.isnan(trial.user_attrs[records.WALL_TIME])
