"""The red team's 12 s database block, rerun at the server: PostgreSQL's tables locked (every call blocks, none
fails) for four times the grace period while a confirmation's units train. No worker dies, no live unit is
failed as stale, the command ends with exit 0 and every unit once."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from vmpo_tune import records

from .search_helpers import LONG_TOY, cli, spawn, wait_for, write_study

pytestmark = [pytest.mark.server, pytest.mark.slow]
BLOCK_S = 12
LIVENESS = ("--heartbeat-interval", "1", "--grace-period", "3")


def test_a_database_blocked_for_12_s_kills_no_worker_and_fails_no_live_unit(tmp_path, pg_url):
    write_study(tmp_path, {**LONG_TOY, "total_steps": 16_000})
    search = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", pg_url, "--out", "run", "--trials", "2",
                 cwd=tmp_path)  # fmt: skip
    assert search.returncode == 0, search.stderr
    proc = spawn("vmpo_tune.confirm", "--study", "toy", "--storage", pg_url, "--run-dir", "run", "--top", "1",
                 "--seeds", "2", "--workers", "2", *LIVENESS, cwd=tmp_path)  # fmt: skip
    companion = records.confirm_study_name("toy")

    def training():
        try:
            units = optuna.load_study(study_name=companion, storage=pg_url).get_trials()
        except KeyError:
            return None
        # a unit in its last evaluation interval: it ends during the block, and its worker then looks for stale
        # units (its partner's heartbeats held back by the block) the moment the database is back
        return [u for u in units if u.state == TrialState.RUNNING and len(u.intermediate_values) >= 7] or None

    try:
        wait_for(training, timeout=240, every=0.05)
        engine = sqlalchemy.create_engine(pg_url)
        blocked = threading.Event()

        def block() -> None:
            with engine.begin() as conn:  # every table a worker touches, until the transaction ends
                conn.execute(sqlalchemy.text(
                    "LOCK TABLE trials, trial_system_attributes, trial_user_attributes, trial_values, "
                    "trial_intermediate_values, studies, study_system_attributes IN ACCESS EXCLUSIVE MODE"
                ))  # fmt: skip
                blocked.set()
                time.sleep(BLOCK_S)

        blocker = threading.Thread(target=block)
        blocker.start()
        assert blocked.wait(timeout=30)
        blocker.join()
        engine.dispose()
        assert proc.wait(timeout=400) == 0, (tmp_path / "proc.out").read_text()
    finally:
        proc.kill()
    output = (tmp_path / "proc.out").read_text()
    assert "no heartbeat" not in output and "Traceback" not in output, output
    units = optuna.load_study(study_name=companion, storage=pg_url).get_trials()
    assert all(u.state == TrialState.COMPLETE for u in units), [(u.number, u.state) for u in units]
    pairs = [(u.user_attrs[records.CANDIDATE], tuple(records.read_seeds(u))) for u in units]
    assert len(pairs) == len(set(pairs)) and len(pairs) in (2, 4)  # the default (and the best trial) on 2 seeds
