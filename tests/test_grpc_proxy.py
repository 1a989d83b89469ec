"""``--storage grpc://``: Optuna's gRPC storage proxy (``python -m vmpo_tune.proxy``) in front of a real
PostgreSQL database, in a real process: exact budgets, liveness and exact resume through it, a proxy that
goes away and comes back, its budget locks, and the one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from vmpo_tune import records
from vmpo_tune.budget_lock import BudgetLock
from vmpo_tune.proxy import LockService

from .search_helpers import (
    CALM,
    LONG_TOY,
    ROOT,
    TOY_STUDY,
    asks_while_another_holds,
    cli,
    kill_a_worker_then_rerun,
    spawn,
    wait_for,
    write_study,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """A real proxy process on a free loopback port, which a test may kill and start again."""

    def __init__(self, storage: str, folder: Path) -> None:
        self.storage, self.folder, self.port = storage, folder, free_port()
        self.url = f"grpc://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.folder / "proxy.log", "ab")  # noqa: SIM115 (the process owns it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vmpo_tune.proxy", "--storage", self.storage, "--port", str(self.port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=60)

    def _answers(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def proxy(pg_url, tmp_path):
    server = Proxy(pg_url, tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(timeout=30)


def stored(pg_url: str, name: str = "toy") -> list:
    return optuna.load_study(study_name=name, storage=pg_url).get_trials()


def assert_each_unit_once(units: list) -> None:
    """Every candidate on each of the 2 test seeds exactly once, complete (no duplicated or lost unit)."""
    pairs = [(u.user_attrs[records.CANDIDATE], tuple(records.read_seeds(u))) for u in units]
    candidates = {c for c, _ in pairs}
    assert len(pairs) == len(set(pairs)) == 2 * len(candidates) >= 2, pairs
    assert all(u.state == TrialState.COMPLETE for u in units), [u.state for u in units]


@pytest.mark.server
def test_two_commands_share_an_exact_budget_and_confirm_through_the_proxy(tmp_path, pg_url, proxy):
    write_study(tmp_path, CALM)
    args = ("--study", "toy.yaml", "--storage", proxy.url, "--out", "run", "--trials", "8", "--workers", "2")
    first, second = spawn("vmpo_tune.search", *args, cwd=tmp_path), spawn("vmpo_tune.search", *args, cwd=tmp_path)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0, (tmp_path / "proc.out").read_text()
    counts = records.budget_counts(stored(pg_url))  # read from the database itself, not through the proxy
    assert counts.finished == 8 and counts.running == 0 and counts.waiting == 0, counts
    confirm = cli("vmpo_tune.confirm", "--study", "toy", "--storage", proxy.url, "--run-dir", "run", "--top", "2",
                  "--seeds", "2", "--workers", "2", cwd=tmp_path)  # fmt: skip
    assert confirm.returncode == 0, confirm.stderr
    assert_each_unit_once(stored(pg_url, records.confirm_study_name("toy")))
    exported = cli("vmpo_tune.export", "--study", "toy", "--storage", proxy.url, "--out", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0 and (tmp_path / "best.yaml").exists(), exported.stderr


@pytest.mark.server
@pytest.mark.slow
def test_a_killed_worker_through_the_proxy_is_retried_and_resumed_exactly(tmp_path, pg_url, proxy):
    trials, victim = kill_a_worker_then_rerun(tmp_path, proxy.url, lambda: stored(pg_url))
    counts = records.budget_counts(trials)
    assert counts.finished == 2 and counts.running == 0, counts
    retry = next(t for t in trials if t.system_attrs.get(records.RETRY_OF) == victim.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[records.RESUME_EXACT] is True


def _restart_mid_run(tmp_path, pg_url, proxy, proc, study: str) -> None:
    """Kill the proxy while runs are under way, keep it away a few seconds, start it again."""

    def under_way():
        try:
            trials = stored(pg_url, study)
        except KeyError:
            return None
        return [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values] or None

    try:
        wait_for(under_way, timeout=180)
        proxy.kill()
        time.sleep(4)
        proxy.start()
        assert proc.wait(timeout=400) == 0, (tmp_path / "proc.out").read_text()
    finally:
        proc.kill()


@pytest.mark.server
@pytest.mark.slow
def test_a_proxy_restarted_mid_search_and_mid_confirmation_loses_no_result(tmp_path, pg_url, proxy):
    write_study(tmp_path, {**LONG_TOY, "total_steps": 12_000})
    args = ("--study", "toy.yaml", "--storage", proxy.url, "--out", "run", "--trials", "4", "--workers", "2")
    _restart_mid_run(tmp_path, pg_url, proxy, spawn("vmpo_tune.search", *args, cwd=tmp_path), "toy")
    trials = stored(pg_url)
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    confirm = ("--study", "toy", "--storage", proxy.url, "--run-dir", "run", "--top", "1", "--seeds", "2")
    proc = spawn("vmpo_tune.confirm", *confirm, "--workers", "2", cwd=tmp_path)
    _restart_mid_run(tmp_path, pg_url, proxy, proc, records.confirm_study_name("toy"))
    assert_each_unit_once(stored(pg_url, records.confirm_study_name("toy")))


@pytest.mark.server
def test_bad_proxy_input_is_one_line_and_changes_nothing(tmp_path, pg_url, proxy):
    write_study(tmp_path, TOY_STUDY)
    nothing = f"grpc://127.0.0.1:{free_port()}"
    for command in (("vmpo_tune.search", "--study", "toy.yaml"), ("vmpo_tune.export", "--study", "toy")):
        run = cli(*command, "--storage", nothing, cwd=tmp_path)
        assert run.returncode == 2 and "nothing answers at" in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
    busy = cli("vmpo_tune.proxy", "--storage", pg_url, "--port", str(proxy.port), cwd=tmp_path, timeout=60)
    assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{proxy.port}" in busy.stderr, busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
    journal = cli("vmpo_tune.proxy", "--storage", str(tmp_path / "s.log"), cwd=tmp_path)
    assert journal.returncode == 2 and "does not support journal storages" in journal.stderr
    bad = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", "grpc://127.0.0.1", cwd=tmp_path)
    assert bad.returncode == 2 and "use grpc://HOST:PORT" in bad.stderr
    assert optuna.get_all_study_names(storage=pg_url) == []  # nothing was made behind the proxy


def test_a_grpc_url_without_grpc_installed_names_the_install(tmp_path):
    write_study(tmp_path, TOY_STUDY)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "grpc.py").write_text("raise ImportError('no grpc here')\n")
    env = {"PYTHONPATH": f"{shadow}{os.pathsep}{ROOT}"}
    run = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", "grpc://127.0.0.1:13000", cwd=tmp_path, env=env)
    assert run.returncode == 2 and "pip install -e '.[grpc]'" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_the_lock_service_grants_one_holder_and_expires_a_dead_ones_grant(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    locks = LockService()
    first = locks.acquire({"study": "a", "ttl": 10}, None)["token"]
    assert first and locks.acquire({"study": "a", "ttl": 10}, None) == {"token": None}  # taken
    assert locks.acquire({"study": "b", "ttl": 10}, None)["token"]  # another study's lock is its own
    assert locks.release({"study": "a", "token": "not-mine"}, None) == {"released": False}
    assert locks.release({"study": "a", "token": first}, None) == {"released": True}
    second = locks.acquire({"study": "a", "ttl": 10}, None)["token"]
    clock[0] += 9.9
    assert locks.acquire({"study": "a", "ttl": 10}, None) == {"token": None}  # still within its 10 s
    clock[0] += 0.2
    third = locks.acquire({"study": "a", "ttl": 10}, None)["token"]  # its holder died: the grant expired
    assert third and third != second
    assert locks.release({"study": "a", "token": second}, None) == {"released": False}  # too late: not its lock


def test_a_worker_waiting_for_the_proxys_lock_asks_less_and_less_often(proxy):
    count = [0]

    class Counting(BudgetLock):
        def _lock_call(self, method: str, request: dict) -> dict:
            count[0] += method == "Acquire"
            return super()._lock_call(method, request)

    asks = asks_while_another_holds(Counting(proxy.url, "toy"), Counting(proxy.url, "toy"), count, hold_s=2.0)
    # asking every 10-50 ms (as before) would be 40 or more asks in 2 s; waits doubling from 10 ms to 0.5 s, 16 at most
    assert 2 <= asks <= 16, asks
