"""``--storage redis://``: Optuna's journal kept in a real Redis server, with the same budget, liveness and
resume rules as every other storage; and the one-line errors of a Redis that is not there."""

from __future__ import annotations

import os

import optuna
import pytest
from optuna.storages.journal import JournalRedisBackend, JournalStorage
from optuna.trial import TrialState

from vmpo_tune import records
from vmpo_tune.budget_lock import BudgetLock

from .search_helpers import (
    CALM,
    ROOT,
    TOY_STUDY,
    asks_while_another_holds,
    cli,
    kill_a_worker_then_rerun,
    spawn,
    write_study,
)

pytestmark = pytest.mark.server


def stored(url: str, name: str = "toy") -> list:
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalRedisBackend(url))).get_trials()


def test_two_commands_share_an_exact_budget_and_confirm_through_redis(tmp_path, redis_url):
    write_study(tmp_path, CALM)
    args = ("--study", "toy.yaml", "--storage", redis_url, "--out", "run", "--trials", "6", "--workers", "2")
    first, second = spawn("vmpo_tune.search", *args, cwd=tmp_path), spawn("vmpo_tune.search", *args, cwd=tmp_path)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0, (tmp_path / "proc.out").read_text()
    counts = records.budget_counts(stored(redis_url))
    assert counts.finished == 6 and counts.running == 0 and counts.waiting == 0, counts
    confirm = cli(
        "vmpo_tune.confirm", "--study", "toy", "--storage", redis_url, "--run-dir", "run", "--seeds", "2", cwd=tmp_path
    )
    assert confirm.returncode == 0, confirm.stderr
    exported = cli("vmpo_tune.export", "--study", "toy", "--storage", redis_url, "--out", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0 and (tmp_path / "best.yaml").exists(), exported.stderr


@pytest.mark.slow
def test_a_killed_worker_on_redis_is_retried_and_resumed_exactly(tmp_path, redis_url):
    trials, victim = kill_a_worker_then_rerun(tmp_path, redis_url, lambda: stored(redis_url))
    counts = records.budget_counts(trials)
    assert counts.finished == 2 and counts.running == 0, counts
    killed = next(t for t in trials if t.number == victim.number)
    assert killed.state == TrialState.FAIL and "no heartbeat" in killed.user_attrs[records.FAIL_REASON]
    retry = next(t for t in trials if t.system_attrs.get(records.RETRY_OF) == killed.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[records.RESUME_EXACT] is True


def test_a_redis_url_with_nothing_listening_is_one_line(tmp_path):
    write_study(tmp_path, TOY_STUDY)
    for command in (("vmpo_tune.search", "--study", "toy.yaml"), ("vmpo_tune.export", "--study", "toy")):
        run = cli(*command, "--storage", "redis://127.0.0.1:1/0", cwd=tmp_path)
        assert run.returncode == 2 and "cannot reach Redis" in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_redis_url_without_the_client_names_the_install(tmp_path):
    write_study(tmp_path, TOY_STUDY)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "redis.py").write_text("raise ImportError('no redis client here')\n")  # as if it were not installed
    env = {"PYTHONPATH": f"{shadow}{os.pathsep}{ROOT}"}
    run = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", "redis://127.0.0.1:6379/0", cwd=tmp_path, env=env)
    assert run.returncode == 2 and "pip install 'vmpo-tune[redis]'" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_worker_waiting_for_the_redis_lock_asks_less_and_less_often(redis_url, monkeypatch):
    import redis.lock

    count, ask = [0], redis.lock.Lock.do_acquire

    def counted(self, token):
        count[0] += 1
        return ask(self, token)

    monkeypatch.setattr(redis.lock.Lock, "do_acquire", counted)  # counts the real asks (SET NX); Redis answers them
    asks = asks_while_another_holds(BudgetLock(redis_url, "toy"), BudgetLock(redis_url, "toy"), count, hold_s=2.0)
    # asking every 50 ms (as before) would be 40 asks in 2 s; waits doubling from 10 ms to 0.5 s, 16 at most
    assert 2 <= asks <= 16, asks
