"""The stored-study format's helpers, redaction, and the liveness rules, on real (SQLite) studies."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from vmpo_tune import records
from vmpo_tune.budget_lock import BudgetLock
from vmpo_tune.config import RunConfig, TrainConfig, VMPOConfig
from vmpo_tune.redaction import redact, redact_command, redact_url
from vmpo_tune.search import liveness
from vmpo_tune.search.confirmation import Candidate, config_id, plan_units
from vmpo_tune.storage import open_storage


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:se/cr?et@h/db", "postgresql://u:***@h/db"),  # a raw '/' or '?' in the password
        ("postgresql://u@h/db?password=secret&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("mysql+pymysql://u@h/db?PWD=secret", "mysql+pymysql://u@h/db?PWD=***"),
        ("postgresql://u@h/db?ssl_key_password=secret", "postgresql://u@h/db?ssl_key_password=***"),
        ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
    ],
)
def test_every_form_of_password_is_redacted(url, shown):
    assert redact_url(url) == shown
    assert redact(f"--storage '{url}' --trials 3") == f"--storage '{shown}' --trials 3"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:Zq9 Wx7 Kp3@h/db",  # spaces
        "postgresql://u:Zq9'Wx7@h/db",  # a quote
        'postgresql://u:Zq9 "Wx7"@h/db',  # double quotes
        "postgresql://u:Zq9@Wx7@h/db",  # a raw '@'
        "postgresql://u@h/db?password=Zq9;Wx7&sslmode=require",  # a ';' in a query value
    ],
)
def test_passwords_with_spaces_quotes_semicolons_and_at_signs_leave_no_fragment(url):
    for shown in (
        redact_url(url),
        redact(f"error: cannot reach {url} (timeout)"),
        redact_command(["vmpo-search", "--storage", url]),
    ):
        assert "***" in shown and not [f for f in ("Zq9", "Wx7", "Kp3") if f in shown], shown
    assert redact_url(url).endswith(("@h/db", "&sslmode=require"))


def study_at(tmp_path, name="s"):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", create_parent=True)
    return optuna.create_study(storage=storage, study_name=name, direction="maximize"), storage


def test_a_running_trial_without_heartbeat_goes_stale_by_its_start_time(tmp_path, monkeypatch):
    study, _ = study_at(tmp_path)
    beating, silent = study.ask(), study.ask()
    liveness.beat(study, beating._trial_id)
    assert liveness.stale_trials(study, grace=30) == []
    monkeypatch.setattr(liveness, "NO_HEARTBEAT_GRACE", 0)
    time.sleep(0.05)
    stale = liveness.stale_trials(study, grace=0.01)
    assert {t.number for t, _ in stale} == {beating.number, silent.number}


def test_silence_that_an_outage_explains_is_not_a_dead_worker(tmp_path, monkeypatch):
    """During an outage nobody can beat; once the storage is back, a live worker gets the grace period to beat
    again before anyone fails its trial (red team: a 12 s block failed live units as "no heartbeat")."""
    import vmpo_tune.storage_faults as storage_module

    study, _ = study_at(tmp_path)
    trial = study.ask()
    liveness.beat(study, trial._trial_id)
    monkeypatch.setattr(storage_module, "_TROUBLE", [0.0])
    time.sleep(1.5)
    assert [t.number for t, _ in liveness.stale_trials(study, grace=1.0)] == [trial.number]  # silent, no outage
    calls = []

    def blip():  # one dropped connection: not an outage, it changes nothing
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("server closed the connection unexpectedly")
        return "ok"

    assert storage_module.with_retries(blip, "a read", patience=5, quiet=True) == "ok"
    assert [t.number for t, _ in liveness.stale_trials(study, grace=1.0)] == [trial.number]
    down_until = time.time() + storage_module.OUTAGE + 0.1

    def outage():  # the storage fails for longer than OUTAGE seconds, then answers
        if time.time() < down_until:
            raise ConnectionError("server closed the connection unexpectedly")
        return "ok"

    assert storage_module.with_retries(outage, "a read", patience=10, quiet=True) == "ok"
    assert liveness.stale_trials(study, grace=1.0) == []  # the outage that just ended explains the silence
    time.sleep(1.1)
    assert [t.number for t, _ in liveness.stale_trials(study, grace=1.0)] == [trial.number]  # but not forever


def test_interruptions_do_not_use_up_retries_but_failures_do(tmp_path):
    study, _ = study_at(tmp_path)
    trial = study.ask()
    record = {"0": {"env_steps": 512, "artifact": "blob-1"}}
    records.write_resume(trial, record)
    for _ in range(liveness.MAX_RETRY + 2):  # Ctrl-C again and again: always queued, the record moves on
        assert liveness.fail_and_requeue(study, study._storage.get_trial(trial._trial_id), "interrupted", True)
        trial = study.ask()
        assert records.read_resume(trial) == record
    for i in range(liveness.MAX_RETRY):  # a dead worker, three times: queued each time
        assert liveness.fail_and_requeue(study, study._storage.get_trial(trial._trial_id), f"dead {i}")
        trial = study.ask()
    assert liveness.fail_and_requeue(study, study._storage.get_trial(trial._trial_id), "dead again")
    last = study._storage.get_trial(trial._trial_id)
    assert last.state == TrialState.FAIL and records.read_resume(last) == record  # kept: nothing deletes it
    assert not [t for t in study.get_trials() if t.state == TrialState.WAITING]  # and not queued again
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert all(records.read_resume(t) == {} for t in failed[:-1])  # only the last attempt points at blobs


def _config(eta: float) -> RunConfig:
    return RunConfig(VMPOConfig(epsilon_eta=eta), TrainConfig(env_id="X"), 9)


def test_confirmation_units_are_matched_by_configuration_not_label(tmp_path):
    study, storage = study_at(tmp_path, "s/confirm")
    lock = BudgetLock(f"sqlite:///{tmp_path / 'study.db'}", "s/confirm")
    first = [Candidate("trial 3 (default)", 3, 10.0, _config(0.1), True), Candidate("trial 5", 5, 9.0, _config(0.2))]
    assert plan_units(study, lock, first, [1000, 1001], 100) == 4
    # a rerun where the default is no longer in the top K: another label, the same configuration
    again = [Candidate("trial 5", 5, 9.0, _config(0.2)), Candidate("default", None, None, _config(0.1), True)]
    assert plan_units(study, lock, again, [1000, 1001, 1002], 100) == 2  # only seed 1002 is new, per config
    units = study.get_trials()
    by_config = {}
    for t in units:
        by_config.setdefault(config_id(records.read_config(t)), set()).add(t.user_attrs[records.CANDIDATE])
    assert sorted(map(sorted, by_config.values())) == [["trial 3 (default)"], ["trial 5"]]  # first label kept
    pairs = sorted((t.user_attrs[records.CANDIDATE], records.read_seeds(t)[0]) for t in units)
    assert len(pairs) == len(set(pairs)) == 6
    lock.close()


def test_a_url_glued_to_its_flag_and_a_bad_flag_hide_the_password(tmp_path):
    from .search_helpers import cli

    assert (
        redact_command(["vmpo-search", "--storage=postgresql://u:Zq9@h/db"])
        == "vmpo-search '--storage=postgresql://u:***@h/db'"
    )
    run = cli("vmpo_tune.search", "--study", "x", "postgresql://u:Zq9@h/db", cwd=tmp_path)  # a stray argument
    assert run.returncode == 2 and "Zq9" not in run.stderr and "***" in run.stderr
