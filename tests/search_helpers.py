"""Helpers for end-to-end search tests: study files and CLI runs in real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]

TOY_STUDY = {
    "description": "toy study for tests",
    "env_id": "tests.toy_envs:Survive-v0",
    "total_steps": 512,
    "evaluation": {"interval": 256, "episodes": 2},
    "train": {"num_envs": 1, "rollout_steps": 64},
    "agent": {"policy_layer_sizes": [16], "value_layer_sizes": [16], "m_steps": 2},
    "search_space": {
        "policy_lr": {"choices": [1.0e-4, 10.0], "default": 1.0e-4},
        "reward_scale": {"choices": [1.0, 1.0e39], "default": 1.0},
        "epsilon_eta": {"low": 0.001, "high": 0.1, "log": True, "default": 0.01},
    },
    "sampler": {"name": "random"},
    "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
}


# no way to diverge or be wrecked: every trial completes, and the candidates differ in epsilon_eta only
CALM = {**TOY_STUDY, "search_space": {"epsilon_eta": TOY_STUDY["search_space"]["epsilon_eta"]}}


def write_study(folder: Path, data: dict | None = None, name: str = "toy") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(TOY_STUDY if data is None else data, sort_keys=False))
    return path


def cli(module: str, *args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run ``python -m module args`` like a user would; returns the CompletedProcess."""
    base = {k: v for k, v in os.environ.items() if k != "VMPO_TUNE_STORAGE"}  # only what a test asks for
    full_env = {**base, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def storage_of(url: str, read_only: bool = False):
    """An Optuna storage for a URL the CLI accepts (an RDB URL, or journal:///path for a journal file)."""
    if url.startswith("journal://"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url[len("journal://") :]))
    if read_only:  # never create the schema under the feet of a process being watched
        return optuna.storages.RDBStorage(url, skip_table_creation=True, skip_compatibility_check=True)
    return url


def load(url: str, name: str = "toy") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage_of(url))


def spawn(module: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m module args`` in the background (stdout/stderr to files in ``cwd``)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    out = open(cwd / "proc.out", "ab")  # noqa: SIM115 (closed by the caller's process end)
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def interrupt_search(url: str, args, cwd: Path, min_values: int = 2, timeout: float = 180) -> None:
    """Run ``search args`` and press Ctrl-C once one of its trials has reported ``min_values`` evaluations; it exits
    130, leaving that trial to be retried (and resumed) by the next run."""
    proc = spawn("vmpo_tune.search", *args, cwd=cwd)
    try:
        wait_for(running_with_values(url, 1, min_values=min_values), timeout=timeout)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        proc.kill()


def wait_for(predicate, timeout: float = 60.0, every: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate.__name__}")


def running_with_values(url: str, n: int, min_values: int = 1, name: str = "toy"):
    """The RUNNING trials of the study once ``n`` of them report ``min_values`` evaluations."""

    def check():
        try:
            study = optuna.load_study(study_name=name, storage=storage_of(url, read_only=True))
        except Exception:
            return None
        running = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.RUNNING and len(t.intermediate_values) >= min_values
        ]
        return running if len(running) >= n else None

    return check


LONG_TOY = {
    **TOY_STUDY,
    "total_steps": 24_000,
    "evaluation": {"interval": 2_000, "episodes": 1},
    "search_space": {"epsilon_eta": {"low": 0.001, "high": 0.1, "log": True, "default": 0.01}},
}


def kill_a_worker_then_rerun(tmp_path: Path, storage_arg: str, stored) -> tuple[list, optuna.trial.FrozenTrial]:
    """A 2-trial search on ``--storage storage_arg``; one worker is SIGKILLed mid-trial (after two evaluations),
    the command finishes, and a rerun after the grace period retries the dead trial. Returns the stored trials
    (``stored()`` reads them) and the killed trial."""
    import signal
    import time

    write_study(tmp_path, {**LONG_TOY, "total_steps": 8_000})
    args = ("--study", "toy.yaml", "--storage", storage_arg, "--out", "run", "--trials", "2", "--workers", "2")
    proc = spawn("vmpo_tune.search", *args, "--heartbeat-interval", "1", "--grace-period", "3", cwd=tmp_path)

    def running():
        try:
            trials = stored()
        except KeyError:  # the study is not created yet
            return None
        return [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and len(t.intermediate_values) >= 2]

    try:
        victim = wait_for(running, timeout=180)[0]
        os.kill(victim.user_attrs["provenance"]["pid"], signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        proc.kill()
    time.sleep(3.5)
    rerun = cli("vmpo_tune.search", *args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    return stored(), victim


def asks_while_another_holds(first, second, count: list[int], hold_s: float = 2.0) -> int:
    """``second`` (a BudgetLock) waits for the lock ``first`` holds for ``hold_s`` seconds, then gets it; returns
    how many times it asked, read from ``count`` (a one-item list the caller's counting wrapper increments on every
    ask, the first holder's included)."""
    got = threading.Event()

    def wait_then_hold() -> None:
        with second.hold():
            got.set()

    with first.hold():
        before = count[0]
        waiter = threading.Thread(target=wait_then_hold, daemon=True)
        waiter.start()
        time.sleep(hold_s)
        assert not got.is_set(), "the second holder got the lock while the first held it"
    waiter.join(timeout=60)
    assert got.is_set(), "the second holder never got the lock after the first released it"
    return count[0] - before
