"""End to end through the CLI, in subprocesses, against real SQLite files."""

from __future__ import annotations

import os

import numpy as np
import optuna
import pytest
import yaml

from vmpo_tune import provenance, records
from vmpo_tune.config import TrainConfig, VMPOConfig
from vmpo_tune.search import liveness
from vmpo_tune.search.spec import default_params, parse_spec

from .search_helpers import CALM, ROOT, TOY_STUDY, cli, load, write_study


def search(tmp_path, *args, study="toy.yaml", **kw):
    return cli("vmpo_tune.search", "--study", study, "--out", "run", *args, cwd=tmp_path, **kw)


def url(tmp_path):
    return f"sqlite:///{tmp_path / 'run' / 'study.db'}"


def test_tiny_search_counts_values_and_attributes(tmp_path):
    write_study(tmp_path)
    proc = search(tmp_path, "--trials", "3", "--sampler", "random")
    assert proc.returncode == 0, proc.stderr
    study = load(url(tmp_path))
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state.is_finished() for t in trials)
    first = trials[0]
    spec = parse_spec(TOY_STUDY, tmp_path / "toy.yaml", check_env=False)
    assert first.params == default_params(spec) and first.user_attrs["enqueued"] == "default configuration"
    assert first.state == optuna.trial.TrialState.COMPLETE
    # the fresh policy survives every step of the toy env: 50 at both evaluation marks
    assert first.intermediate_values == {256: 50.0, 512: 50.0} and first.value == 50.0
    attrs = first.user_attrs
    assert attrs["seeds"] == [0] and attrs["seed_returns"] == [50.0]
    VMPOConfig.from_dict(attrs["config"]["agent"])
    assert TrainConfig.from_dict(attrs["config"]["train"]).env_id == "tests.toy_envs:Survive-v0"
    assert attrs["wall_time_s"] > 0 and attrs["env_steps_per_s"] > 0 and attrs["env_steps_trained"] == 512
    assert {"torch", "optuna", "gymnasium", "python"} <= set(attrs["provenance"]["versions"])
    assert attrs["provenance"]["cpu"] == provenance.cpu_model() != ""  # runs reproduce bit for bit on this CPU kind
    assert "COMPLETE" in proc.stderr and "3/3 finished" in proc.stderr
    # finished trials keep their best checkpoint and curve as artifacts, no resume checkpoints
    assert all(t.user_attrs["resume_state"] == {} for t in trials)
    stored = list((tmp_path / "run" / "artifacts").iterdir())
    assert stored and not any(p.name.startswith("resume-") for p in stored)


def test_pruned_and_failed_trials_do_not_stop_the_study_and_rerun_resumes(tmp_path):
    write_study(tmp_path)
    assert search(tmp_path, "--trials", "1").returncode == 0
    study = load(url(tmp_path))
    study.enqueue_trial({"policy_lr": 10.0, "reward_scale": 1.0, "epsilon_eta": 0.01})  # wrecks the policy
    study.enqueue_trial({"policy_lr": 1e-4, "reward_scale": 1.0e39, "epsilon_eta": 0.01})  # inf returns
    proc = search(tmp_path, "--trials", "4")
    assert proc.returncode == 0, proc.stderr
    trials = load(url(tmp_path)).get_trials()
    assert [t.state.name for t in trials[:3]] == ["COMPLETE", "PRUNED", "FAIL"]
    assert len(trials) == 4 and trials[3].state.is_finished()  # the study went on after the failure
    pruned, failed = trials[1], trials[2]
    assert list(pruned.intermediate_values) == [256] and pruned.intermediate_values[256] < 50
    assert "NaN or inf" in failed.user_attrs["fail_reason"] and failed.intermediate_values == {}
    assert "trial 1 PRUNED" in proc.stderr and "trial 2 FAIL" in proc.stderr
    assert pruned.user_attrs["resume_state"] == {}
    assert not any(p.name.startswith("resume-") for p in (tmp_path / "run" / "artifacts").iterdir())


def test_rerun_with_the_same_target_runs_nothing_more(tmp_path):
    write_study(tmp_path)
    assert search(tmp_path, "--trials", "2").returncode == 0
    proc = search(tmp_path, "--trials", "2")
    assert proc.returncode == 0 and "nothing to run" in proc.stderr
    assert len(load(url(tmp_path)).trials) == 2


@pytest.mark.slow
def test_several_workers_share_one_sqlite_storage_with_an_exact_count(tmp_path):
    write_study(tmp_path)
    proc = search(tmp_path, "--trials", "9", "--workers", "3")
    assert proc.returncode == 0, proc.stderr
    assert "locked" not in proc.stderr and "Traceback" not in proc.stderr
    trials = load(url(tmp_path)).get_trials()
    assert sorted(t.number for t in trials) == list(range(9))
    assert all(t.state.is_finished() for t in trials)
    assert {
        line.split()[1] for line in proc.stderr.splitlines() if " trial " in line and line.split()[1][0] == "w"
    } == {"w0", "w1", "w2"}


PROBE = """import atexit, os, sys


def _record():
    with open(os.path.join(os.environ["TORCH_PROBE"], str(os.getpid())), "w") as f:
        f.write(("torch " if "torch" in sys.modules else "none ") + " ".join(sys.orig_argv))


atexit.register(_record)
"""


def test_the_command_of_a_pool_never_loads_torch_only_its_workers_do(tmp_path):
    """The command of a search with workers (its confirmation stage included) plans, shows progress and waits: it
    never imports torch, which costs about 2 CPU-s and a few hundred MB in every such command."""
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(PROBE)  # every Python process started below runs it
    (tmp_path / "probe").mkdir()
    env = {"PYTHONPATH": f"{tmp_path / 'hook'}{os.pathsep}{ROOT}", "TORCH_PROBE": str(tmp_path / "probe")}
    write_study(tmp_path, CALM)
    args = ("--trials", "2", "--workers", "2", "--confirm-top", "1", "--confirm-seeds", "2")
    proc = search(tmp_path, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    seen = [p.read_text() for p in (tmp_path / "probe").iterdir()]
    command = [s for s in seen if "-m vmpo_tune.search" in s]
    workers = [s for s in seen if "spawn_main" in s]
    assert len(command) == 1 and command[0].startswith("none "), seen
    assert len(workers) == 4 and all(s.startswith("torch ") for s in workers), seen  # 2 search + 2 confirmation


def test_export_then_train_reproduces_the_trial_exactly(tmp_path):
    write_study(tmp_path)
    study_yaml = dict(
        TOY_STUDY,
        search_space={"epsilon_eta": {"low": 0.001, "high": 0.1, "log": True}},
        total_steps=768,
        env_id="InvertedPendulum-v5",
    )
    write_study(tmp_path, study_yaml)
    assert search(tmp_path, "--trials", "2").returncode == 0
    proc = cli(
        "vmpo_tune.export", "--study", "toy", "--run-dir", "run", "--top", "2", "--out", "best.yaml", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load((tmp_path / "best.yaml").read_text())
    study = load(url(tmp_path))
    best = study.best_trial
    run = doc["runs"][0]
    assert run["trial"] == best.number and run["score"] == best.value and len(doc["runs"]) == 2
    assert VMPOConfig.from_dict(run["agent"]) == VMPOConfig.from_dict(best.user_attrs["config"]["agent"])
    assert doc["study"] == "toy" and doc["provenance"]["versions"]["optuna"] == optuna.__version__
    proc = cli("vmpo_tune.train", "--config", "best.yaml", "--out", "again", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = yaml.safe_load((tmp_path / "again" / "results.yaml").read_text())
    assert results["final_returns"] == [best.value]  # bit-for-bit the trial's final evaluation
    proc = cli(
        "vmpo_tune.train",
        "--config",
        "best.yaml",
        "--seeds",
        "3",
        "--total-steps",
        "256",
        "--out",
        "three",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    results = yaml.safe_load((tmp_path / "three" / "results.yaml").read_text())
    assert results["seeds"] == [0, 1, 2]
    finals = results["final_returns"]
    assert results["final"]["mean"] == pytest.approx(np.mean(finals))
    assert results["final"]["std"] == pytest.approx(np.std(finals, ddof=1))
    assert "IQM" in proc.stdout


def test_export_of_a_missing_study_is_one_line(tmp_path):
    proc = cli("vmpo_tune.export", "--study", "nothing", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "run a search first" in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_several_seeds_per_trial_report_their_mean_at_each_evaluation(tmp_path):
    import csv

    # InvertedPendulum: seeds give different returns, so min, mean and seed order are all visible
    data = dict(
        TOY_STUDY,
        env_id="InvertedPendulum-v5",
        seeds_per_trial=2,
        aggregate="min",
        seed=5,
        search_space={"policy_lr": {"choices": [1.0e-4, 1.0e-3], "default": 1.0e-3}},
    )
    write_study(tmp_path, data)
    proc = search(tmp_path, "--trials", "1", "--pruner", "none")
    assert proc.returncode == 0, proc.stderr
    trial = load(url(tmp_path)).trials[0]
    assert trial.user_attrs["seeds"] == [5, 6]
    curves = {}
    for seed in (5, 6):
        with open(tmp_path / "run" / "trials" / "00000" / f"seed_{seed}" / "evaluations.csv") as f:
            curves[seed] = {int(r["env_steps"]): float(r["eval/return_mean"]) for r in csv.DictReader(f)}
    assert set(curves[5]) == set(curves[6]) == set(trial.intermediate_values) == {256, 512}
    for step, value in trial.intermediate_values.items():
        assert value == pytest.approx((curves[5][step] + curves[6][step]) / 2)
    assert curves[5][512] != curves[6][512]
    assert trial.user_attrs["seed_returns"] == [round(curves[5][512], 3), round(curves[6][512], 3)]
    assert trial.value == min(curves[5][512], curves[6][512])  # the study's aggregate


def test_enqueue_queues_a_hand_written_config_and_refuses_one_outside_the_space(tmp_path):
    write_study(tmp_path)
    (tmp_path / "mine.yaml").write_text("epsilon_eta: 0.05\npolicy_lr: 1.0e-4\n")
    proc = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "2",
        "--enqueue",
        "mine.yaml",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    study = load(f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    queued = [t for t in study.trials if t.user_attrs.get("enqueued") == "from mine.yaml"]
    assert len(queued) == 1 and queued[0].params["epsilon_eta"] == 0.05 and queued[0].params["policy_lr"] == 1e-4
    assert records.enqueued_file(queued[0].user_attrs) == "mine.yaml"
    assert [records.enqueued_file(t.user_attrs) for t in study.trials].count(None) == len(study.trials) - 1
    (tmp_path / "bad.yaml").write_text("epsilon_eta: 5.0\n")
    bad = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "3",
        "--enqueue",
        "bad.yaml",
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "bad.yaml: epsilon_eta: 5.0 is outside the study's search space" in bad.stderr
    (tmp_path / "typo.yaml").write_text("epsilon_etta: 0.05\n")
    typo = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--enqueue", "typo.yaml", cwd=tmp_path)
    assert typo.returncode == 2 and "did you mean 'epsilon_eta'" in typo.stderr
    assert len(load(f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials) == 2  # nothing was added


def test_tensorboard_scalars_for_every_trial_and_seed(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_study(tmp_path, {**TOY_STUDY, "seeds_per_trial": 2})
    proc = cli(
        "vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "1", "--tensorboard", "tb", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    trial = load(f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials[0]
    for seed in (0, 1):
        events = EventAccumulator(str(tmp_path / "tb" / "toy" / "trial-00000" / f"seed-{seed}"))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"eval/return_mean", "loss/policy", "kl/mean", "vmpo/eta", "policy/std"} <= tags
        returns = {e.step: e.value for e in events.Scalars("eval/return_mean")}
        assert sorted(returns) == [256, 512]  # one point per evaluation, at its env-step mark
    assert trial.intermediate_values == {256: 50.0, 512: 50.0}


def test_a_retry_that_cannot_resume_starts_over_and_reaches_the_same_curve(tmp_path):
    """Its failed attempt's curve came with it: reaching those marks again is not a second report."""
    write_study(tmp_path, CALM)
    proc = search(tmp_path, "--trials", "1")
    assert proc.returncode == 0, proc.stderr
    study = load(url(tmp_path), "toy")
    (done,) = study.trials
    missing = {"0": {"env_steps": 256, "artifact": "gone-with-another-machine"}}
    liveness.requeue(study, done, missing)  # as if trial 0 had died at 256 steps on a machine whose files are gone
    proc = search(tmp_path, "--trials", "2")
    assert proc.returncode == 0, proc.stderr
    assert "cannot resume" in proc.stderr and "already reported" not in proc.stderr
    retry = load(url(tmp_path), "toy").trials[1]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.value == done.value and retry.intermediate_values == done.intermediate_values  # bit for bit
