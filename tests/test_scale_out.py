"""Many workers, real servers, killed processes, signals: the storage stays consistent."""

from __future__ import annotations

import json
import os
import signal
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from .search_helpers import LONG_TOY, cli, load, running_with_values, spawn, wait_for, write_study

FAST_HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")


def states(study):
    return [t.state.name for t in study.get_trials(deepcopy=False)]


@pytest.mark.server
@pytest.mark.slow
def test_eight_workers_on_postgresql_finish_exactly_the_budget(tmp_path, pg_url):
    write_study(tmp_path)
    proc = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "13",
        "--workers",
        "8",
        "--storage",
        pg_url,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "rror" not in proc.stderr.replace("error=", "")
    trials = load(pg_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(13))  # exactly N, no duplicates, no extra
    assert all(t.state.is_finished() for t in trials)
    workers = {line.split()[1] for line in proc.stderr.splitlines() if " trial " in line}
    assert len(workers) >= 4  # the budget really was shared by many processes


@pytest.mark.server
def test_mariadb_storage_from_the_environment_and_no_password_anywhere(tmp_path, mysql_url):
    write_study(tmp_path)
    env = {"VMPO_TUNE_STORAGE": mysql_url["url"]}
    from_env = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "3",
        "--workers",
        "2",
        cwd=tmp_path,
        env=env,
    )
    assert from_env.returncode == 0, from_env.stderr
    assert mysql_url["password"] not in from_env.stderr + from_env.stdout
    study = load(mysql_url["url"])
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)
    assert not (tmp_path / "run" / "study.db").exists()  # the environment's storage was used
    # a password on the command line is redacted everywhere it could travel
    proc = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "4",
        "--storage",
        mysql_url["url"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    exported = cli(
        "vmpo_tune.export", "--study", "toy", "--storage", mysql_url["url"], "--out", "best.yaml", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    password = mysql_url["password"]
    attrs = json.dumps([t.user_attrs for t in load(mysql_url["url"]).trials])
    assert "***" in attrs and password not in attrs
    assert password not in proc.stderr + proc.stdout + exported.stderr + exported.stdout
    text = (tmp_path / "best.yaml").read_text()
    assert password not in text and yaml.safe_load(text)["storage"].startswith(f"mysql+pymysql://{mysql_url['user']}")


@pytest.mark.server
def test_wrong_password_is_one_line_and_secret_free(tmp_path, mysql_url):
    write_study(tmp_path)
    bad = mysql_url["url"].replace(mysql_url["password"], "not-the-password")
    start = time.monotonic()
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", bad, cwd=tmp_path)
    assert proc.returncode == 2 and time.monotonic() - start < 30
    assert proc.stderr.count("\n") == 1 and "Access denied" in proc.stderr and "password" in proc.stderr
    assert "not-the-password" not in proc.stderr


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/vmpo", "mysql+pymysql://root@127.0.0.1:1/vmpo"])
def test_unreachable_database_answers_within_seconds(tmp_path, url):
    write_study(tmp_path)
    start = time.monotonic()
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", url, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and time.monotonic() - start < 20
    assert proc.stderr.count("\n") == 1 and "cannot use the storage" in proc.stderr
    assert "server is running" in proc.stderr


def test_existing_study_with_another_direction_is_refused(tmp_path):
    write_study(tmp_path)
    url = f"sqlite:///{tmp_path / 'mini.db'}"
    optuna.create_study(study_name="toy", storage=url, direction="minimize")
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 2 and "direction minimize" in proc.stderr and proc.stderr.count("\n") == 1
    assert load(url).direction == optuna.study.StudyDirection.MINIMIZE and load(url).trials == []


def test_study_files_are_read_with_a_safe_loader(tmp_path):
    (tmp_path / "evil.yaml").write_text("env_id: !!python/object/apply:os.system ['touch pwned']\n")
    proc = cli("vmpo_tune.search", "--study", "evil.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "evil.yaml:1" in proc.stderr and not (tmp_path / "pwned").exists()


def signal_mid_trial(tmp_path, args, url, sig, running: int, min_values: int) -> tuple[int, str]:
    """Start a search, send ``sig`` once ``running`` trials have evaluated; its exit code and log."""
    proc = spawn("vmpo_tune.search", *args, cwd=tmp_path)
    try:
        wait_for(running_with_values(url, running, min_values=min_values), timeout=90)
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    return code, (tmp_path / "proc.out").read_text()


def test_sigint_mid_trial_fails_it_queues_it_and_a_rerun_resumes_from_the_checkpoint(tmp_path):
    write_study(tmp_path, LONG_TOY)
    args = ("--study", "toy.yaml", "--out", "run", "--trials", "1")
    url = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    code, log = signal_mid_trial(tmp_path, args, url, signal.SIGINT, running=1, min_values=2)
    study = load(url)
    assert code == 130 and states(study) == ["FAIL", "WAITING"], (code, states(study), log)  # retry queued
    failed, retry = study.trials
    assert failed.user_attrs["fail_reason"] == "interrupted by SIGINT"
    assert retry.params == failed.params and retry.system_attrs["failed_trial"] == 0
    done = cli("vmpo_tune.search", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    retry = load(url).trials[1]
    assert retry.state == TrialState.COMPLETE
    resumed = retry.user_attrs["resumed_from_env_steps"]
    assert resumed >= 4_000 and retry.user_attrs["env_steps_trained"] == 24_000 - resumed
    assert set(failed.intermediate_values) <= set(retry.intermediate_values)
    assert max(retry.intermediate_values) == 24_000 and retry.value == retry.intermediate_values[24_000]
    assert retry.user_attrs.get("fail_reason") is None  # the retry completed: no inherited failure reason
    curve = (tmp_path / "run" / "trials" / "00001" / "seed_0" / "evaluations.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in curve[1:]] == list(range(2_000, 24_001, 2_000))  # one whole curve


@pytest.mark.slow
def test_sigterm_to_a_pool_fails_every_running_trial(tmp_path):
    write_study(tmp_path, LONG_TOY)
    url = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    args = ("--study", "toy.yaml", "--out", "run", "--trials", "4", "--workers", "2")
    code, log = signal_mid_trial(tmp_path, args, url, signal.SIGTERM, running=2, min_values=1)
    study = load(url)
    assert code == 143 and "RUNNING" not in states(study), (code, states(study), log)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and all(t.user_attrs["fail_reason"] == "interrupted by SIGTERM" for t in failed), log
    assert states(study).count("WAITING") == 2, (states(study), log)


@pytest.mark.server
@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_retried_elsewhere_and_resumes(tmp_path, pg_url):
    write_study(tmp_path, LONG_TOY)
    args = ("--study", "toy.yaml", "--out", "run", "--trials", "1", "--storage", pg_url, *FAST_HEARTBEAT)
    victim = spawn("vmpo_tune.search", *args, cwd=tmp_path)
    try:
        running = wait_for(running_with_values(pg_url, 1, min_values=3), timeout=90)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        victim.kill()
    killed = running[0].number
    assert load(pg_url).trials[killed].state == TrialState.RUNNING  # nobody told the storage
    time.sleep(4)  # longer than the grace period: its heartbeat is now stale
    other = cli("vmpo_tune.search", *args, cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    trials = load(pg_url).get_trials()
    dead = trials[killed]
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == killed)
    assert dead.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.params == dead.params
    assert all(retry.intermediate_values[s] == v for s, v in dead.intermediate_values.items())  # inherited
    resumed = retry.user_attrs["resumed_from_env_steps"]
    # the kill may land between reporting the third evaluation and storing its resume state: the second's
    assert resumed >= 4_000 and retry.user_attrs["env_steps_trained"] == 24_000 - resumed  # not repeated
    assert retry.user_attrs["resume_exact"] is True
    assert len(trials) == 2  # the retried failure is not counted against --trials 1: only its retry ran


OPEN_STORAGE = "import sys; from vmpo_tune.storage import open_storage as o; o(sys.argv[1])"


def _open_together(url: str, n: int) -> list:
    import subprocess
    import sys

    from .search_helpers import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_STORAGE, url], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    return [(p.wait(timeout=60), p.stderr.read()) for p in procs]


def test_processes_starting_together_on_a_fresh_sqlite_file_all_succeed(tmp_path):
    """They race to switch to WAL and to create Optuna's tables; nobody may lose."""
    for round_ in range(5):
        results = _open_together(f"sqlite:///{tmp_path / f'fresh{round_}.db'}", 3)
        assert all(code == 0 for code, _ in results), results


@pytest.mark.server
def test_processes_starting_together_on_a_fresh_postgresql_database_all_succeed(pg_url):
    results = _open_together(pg_url, 4)
    assert all(code == 0 for code, _ in results), results
