"""Nothing lost, nothing wrong: exact resume, budgets that close, storage faults, secrets, inputs that hurt.

Real processes, real signals and real database servers (PostgreSQL and MariaDB on loopback).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.trial import TrialState

from vmpo_tune import records

from .search_helpers import (
    LONG_TOY,
    ROOT,
    TOY_STUDY,
    cli,
    interrupt_search,
    load,
    running_with_values,
    spawn,
    wait_for,
    write_study,
)

FAST_HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The LONG_TOY default trial run once without interruption: its curve and final value."""
    root = tmp_path_factory.mktemp("uninterrupted")
    write_study(root, LONG_TOY)
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "1", cwd=root)
    assert proc.returncode == 0, proc.stderr
    (trial,) = load(f"sqlite:///{root / 'run' / 'study.db'}").trials
    return trial


def group_members(pgid: int) -> list[int]:
    """Processes of a process group (read from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid:
                out.append(int(entry.name))
    return out


# ---------------------------------------------------------------------------- exact resume


@pytest.mark.slow
def test_sigint_then_rerun_gives_exactly_the_uninterrupted_result(tmp_path, uninterrupted):
    write_study(tmp_path, LONG_TOY)
    url = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    args = ("--study", "toy.yaml", "--out", "run", "--trials", "1")
    for min_values in (2, 7):  # interrupt twice, at different points of the same trial
        interrupt_search(url, args, tmp_path, min_values=min_values)
    done = cli("vmpo_tune.search", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = load(url).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE"]
    final = trials[-1]
    assert final.user_attrs[records.RESUME_EXACT] is True and final.user_attrs[records.RESUMED_FROM] >= 12_000
    assert final.intermediate_values == uninterrupted.intermediate_values  # every evaluation, bit for bit
    assert final.value == uninterrupted.value
    assert all(t.user_attrs[records.RESUME] == {} for t in trials)  # nothing points at a removed checkpoint


# ---------------------------------------------------------------------------- budgets that close


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.server), "journal"])
def test_a_killed_command_leaves_no_running_trial_and_the_budget_closes(tmp_path, backend, request, uninterrupted):
    """Three commands share --trials 6; one is SIGKILLed mid-trial. The others wait for its heartbeat to go
    stale, fail and retry its trial (which resumes exactly), and finish exactly the budget. On PostgreSQL, and
    on a journal file (the storage for a shared filesystem without a database server)."""
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else f"journal:///{tmp_path}/study.log"
    study = {**LONG_TOY, "search_space": {"epsilon_eta": {"choices": [0.01], "default": 0.01}}}
    write_study(tmp_path, study)
    args = ("--study", "toy.yaml", "--out", "run", "--trials", "6", "--storage", pg_url, *FAST_HEARTBEAT)
    procs = [spawn("vmpo_tune.search", *args, cwd=tmp_path) for _ in range(3)]
    try:
        running = wait_for(running_with_values(pg_url, 1, min_values=3), timeout=120)
        owner = running[0].user_attrs[records.PROVENANCE]["pid"]  # the command whose worker runs it
        victim = next(p for p in procs if p.pid == owner)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        codes = [p.wait(timeout=240) for p in procs if p is not victim]
    finally:
        for p in procs:
            p.kill()
    log = (tmp_path / "proc.out").read_text()
    assert codes == [0, 0], log
    trials = load(pg_url).get_trials()
    counts = records.budget_counts(trials)
    assert counts.running == 0 and counts.waiting == 0, [t.state.name for t in trials]
    assert counts.finished == 6 and counts.complete == 6, (counts, log)  # exactly the budget, all complete
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stale) == counts.retried >= 1
    for dead in stale:
        assert "no heartbeat" in dead.user_attrs[records.FAIL_REASON] and dead.user_attrs[records.RESUME] == {}
        retry = next(t for t in trials if t.system_attrs.get(records.RETRY_OF) == dead.number)
        assert retry.state == TrialState.COMPLETE and retry.user_attrs[records.RESUME_EXACT] is True
        assert retry.value == uninterrupted.value  # resumed exactly: the same result as uninterrupted
    assert running[0].number in {t.number for t in stale}
    assert "rerun the same command to finish" not in log


# ---------------------------------------------------------------------------- storage faults


def _why(exc: Exception) -> str:
    """An exception in one line: its type and the first line of its message."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


class Killer:
    """Kills the study database's connections every ``every`` seconds while it runs."""

    def __init__(self, admin, statement: str, params: dict, every: float = 0.3) -> None:
        self.admin, self.statement, self.params, self.every = admin, statement, params, every
        self.kills = 0
        self.errors: list[str] = []  # why a sweep failed (a failed sweep kills nothing), for a failure's message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.admin.connect() as conn:
                    result = conn.execute(sqlalchemy.text(self.statement), self.params)
                    self.kills += sum(1 for _ in result) if result.returns_rows else 0
            except Exception as exc:
                self.errors.append(_why(exc))

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _check_nothing_lost(url: str, proc, n: int) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    trials = load(url).get_trials()
    counts = records.budget_counts(trials)
    assert counts.finished == n and counts.running == counts.waiting == 0, counts
    reasons = [t.user_attrs.get(records.FAIL_REASON) for t in trials if t.state == TrialState.FAIL]
    assert not any("Storage" in (r or "") or "connection" in (r or "").lower() for r in reasons), reasons
    assert counts.complete == n, [(t.number, t.state.name, t.user_attrs.get(records.FAIL_REASON)) for t in trials]


MEDIUM_TOY = {**LONG_TOY, "total_steps": 8_000, "evaluation": {"interval": 1_000, "episodes": 1}}


def _search_while_connections_are_killed(tmp_path: Path, url: str, killer) -> None:
    """A 2-worker search on ``url`` whose database connections ``killer()`` kills, again and again; nothing is lost.

    6 trials at a time, resumed (the same command with a larger --trials, up to 24) until the connections were
    killed at least 10 times: alone a 6-trial search sees about 230 kills on PostgreSQL, but in full suite runs
    beside two training processes (2026-12-02) one saw 6 and 8, so the count of kills, not the run, decides how
    long the faults go on. Each round's killing starts once the command has opened its storage and a trial reports
    (a command's opening is retried for 10 s only: a server that kills every new session at once is refused, in one
    line, as unusable). A heartbeat every second: a killed pooled connection is reconnected (and can be killed
    again) every second, not only when a trial reports, so the kills do not depend on how fast this machine trains.
    """
    write_study(tmp_path, MEDIUM_TOY)
    kills, errors, trials = 0, [], 0
    while trials < 24 and (trials == 0 or kills < 10):
        trials += 6
        args = ("--study", "toy.yaml", "--out", "run", "--trials", str(trials), "--workers", "2", "--storage", url,
                "--heartbeat-interval", "1")  # fmt: skip
        proc = spawn("vmpo_tune.search", *args, cwd=tmp_path)
        try:
            wait_for(running_with_values(url, 1), timeout=120)
            with killer() as sweeps:
                proc.wait(timeout=400)
        finally:
            proc.kill()
        kills, errors = kills + sweeps.kills, errors + sweeps.errors
        output = (tmp_path / "proc.out").read_text()  # every round's, appended
        assert proc.returncode == 0, output
    # the faults really happened, many times (the sweeps' errors, if any, say why not)
    assert kills >= 10, (kills, trials, len(errors), sorted(set(errors))[:3])
    _check_nothing_lost(url, subprocess.CompletedProcess(proc.args, proc.returncode, output, output), trials)


@pytest.mark.server
@pytest.mark.slow
def test_postgresql_connections_killed_again_and_again_lose_nothing(tmp_path, pg_url):
    database = pg_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        isolation_level="AUTOCOMMIT",
        poolclass=sqlalchemy.pool.NullPool,
    )
    statement = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
    try:
        _search_while_connections_are_killed(tmp_path, pg_url, lambda: Killer(admin, statement, {"db": database}))
    finally:
        admin.dispose()


@pytest.mark.server
@pytest.mark.slow
def test_mariadb_connections_killed_again_and_again_lose_nothing(tmp_path, mysql_url, mysql_admin):
    user = mysql_url["user"]

    class MariaKiller(Killer):
        def _run(self) -> None:
            while not self._stop.wait(self.every):
                try:
                    with mysql_admin.connect() as conn:
                        ids = conn.execute(
                            sqlalchemy.text("SELECT id FROM information_schema.processlist WHERE user = :u"),
                            {"u": user},
                        ).fetchall()
                        for (pid,) in ids:
                            try:
                                conn.execute(sqlalchemy.text(f"KILL {int(pid)}"))
                                self.kills += 1
                            except Exception as exc:  # ended between the listing and the kill
                                self.errors.append(f"KILL: {type(exc).__name__}")
                except Exception as exc:
                    self.errors.append(_why(exc))

    _search_while_connections_are_killed(tmp_path, mysql_url["url"], lambda: MariaKiller(mysql_admin, "", {}))


@pytest.mark.server
@pytest.mark.slow
def test_a_storage_gone_too_long_ends_the_worker_and_a_rerun_resumes_the_trial(tmp_path, pg_url, uninterrupted):
    write_study(tmp_path, LONG_TOY)
    database = pg_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        isolation_level="AUTOCOMMIT",
        poolclass=sqlalchemy.pool.NullPool,
    )
    args = ("--study", "toy.yaml", "--out", "run", "--trials", "1", "--storage", pg_url, *FAST_HEARTBEAT)
    proc = spawn("vmpo_tune.search", *args, "--patience", "4", cwd=tmp_path)
    try:
        wait_for(running_with_values(pg_url, 1, min_values=3), timeout=120)
        with admin.connect() as conn:  # the database refuses every connection, and drops the open ones
            conn.execute(sqlalchemy.text(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false"))
            conn.execute(
                sqlalchemy.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                {"db": database},
            )
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true"))
        admin.dispose()
    log = (tmp_path / "proc.out").read_text()
    assert code == 3 and "error: the storage failed for 4 s" in log and "Traceback" not in log, log  # storage lost
    time.sleep(4)  # past the grace period: the trial's heartbeat is stale
    again = cli("vmpo_tune.search", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    first, retry = load(pg_url).get_trials()
    assert first.state == TrialState.FAIL and "no heartbeat" in first.user_attrs[records.FAIL_REASON]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[records.RESUMED_FROM] > 0
    assert retry.value == uninterrupted.value  # its training was kept and continued exactly


# ---------------------------------------------------------------------------- inputs


def test_too_many_workers_are_refused_before_anything_is_stored(tmp_path):
    write_study(tmp_path)
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--workers", "100000", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "per CPU core" in proc.stderr
    assert "--force" in proc.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_signal_stops_the_spawning_at_once(tmp_path):
    """--force with many workers, then SIGINT while they start: no further process starts, all are gone soon."""
    write_study(tmp_path, LONG_TOY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["--study", "toy.yaml", "--out", "run", "--trials", "40", "--workers", "40", "--force"]
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vmpo_tune.search", *args],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: whatever happens, the group is killed below
        )
    try:
        wait_for(lambda: len(group_members(proc.pid)) >= 3, timeout=60, every=0.01)  # parent, tracker, a worker
        proc.send_signal(signal.SIGINT)
        seen = set(group_members(proc.pid))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            seen |= set(group_members(proc.pid))
            time.sleep(0.01)
        at_signal = len(seen)
        assert proc.wait(timeout=120) == 130, (tmp_path / "log").read_text()[-2000:]
        assert at_signal < 40 + 2  # not every worker was started: the spawning stopped
        wait_for(lambda: not group_members(proc.pid), timeout=60)  # and every worker is gone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "bound, value", [("low", ".nan"), ("high", ".inf"), ("low", "-.inf"), ("default", ".nan")], ids=str
)
def test_non_finite_search_bounds_are_refused(tmp_path, bound, value):
    entry = {"low": 1.0e-4, "high": 1.0e-2, "log": True}
    text = yaml.safe_dump({**TOY_STUDY, "search_space": {"value_lr": entry}}, sort_keys=False)
    text = (
        text.replace(f"    {bound}: ", f"    {bound}: {value} #", 1)
        if bound in entry
        else text.replace("    log: true", f"    log: true\n    {bound}: {value}", 1)
    )
    (tmp_path / "toy.yaml").write_text(text)
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"search_space.value_lr.{bound}" in proc.stderr and "finite" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field", ["normalize_advantages", "shared_encoder"])
def test_booleans_in_study_files_are_strict(tmp_path, field):
    write_study(tmp_path, {**TOY_STUDY, "agent": {**TOY_STUDY["agent"], field: "false"}})
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"agent: {field} must be true or false" in proc.stderr and not (tmp_path / "run").exists()


def test_a_fingerprint_mismatch_changes_nothing_stored(tmp_path):
    write_study(tmp_path)
    url = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    first = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    study = load(url)
    stale = study.ask()  # a RUNNING trial whose worker died long ago
    study._storage.set_trial_system_attr(stale._trial_id, records.HEARTBEAT, time.time() - 3600)
    before = [(t.number, t.state, dict(t.user_attrs), dict(t.system_attrs)) for t in load(url).trials]
    write_study(tmp_path, {**TOY_STUDY, "total_steps": 1024})
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "3", cwd=tmp_path)
    assert proc.returncode == 2 and "created with another" in proc.stderr and proc.stderr.count("\n") == 1
    after = [(t.number, t.state, dict(t.user_attrs), dict(t.system_attrs)) for t in load(url).trials]
    assert after == before  # the stale trial was not failed nor requeued: the check changed nothing


@pytest.mark.server
def test_postgres_scheme_is_an_alias(tmp_path, pg_url):
    write_study(tmp_path)
    alias = pg_url.replace("postgresql://", "postgres://", 1)
    proc = cli(
        "vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "1", "--storage", alias, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert len(load(pg_url).trials) == 1


# ---------------------------------------------------------------------------- secrets


def _everything_stored(url: str) -> str:
    storage = optuna.storages.RDBStorage(url)
    parts = []
    for frozen in storage.get_all_studies():
        study = optuna.load_study(study_name=frozen.study_name, storage=storage)
        parts.append(json.dumps([study.user_attrs, storage.get_study_system_attrs(study._study_id)], default=str))
        for t in study.get_trials():
            parts.append(json.dumps([t.user_attrs, t.system_attrs, t.params], default=str))
    storage.engine.dispose()
    return "\n".join(parts)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("form", ["userinfo", "query", "spaces-and-quotes", "semicolon"])
def test_a_planted_password_appears_nowhere(tmp_path, pg_url, form):
    """Every output of every command, every stored attribute, the export, the report, its CSV / Parquet
    and the dashboard note are searched for a password planted in the storage URL (trust auth ignores it)."""
    secret = "Pl4nted-S3cret"
    if form == "userinfo":
        url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
    elif form == "spaces-and-quotes":
        url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:Pl4nted S3cret's@")
    elif form == "semicolon":
        url = f"{pg_url}?sslmode=disable&password=Pl4nted;S3cret"
    else:
        url = f"{pg_url}?sslmode=disable&password={secret}"
    write_study(tmp_path)
    outputs = []
    search = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "3",
        "--storage",
        url,
        "--confirm-top",
        "1",
        "--confirm-seeds",
        "2",
        cwd=tmp_path,
    )
    assert search.returncode == 0, search.stderr
    outputs += [search.stdout, search.stderr]
    for module, *args in (
        ("vmpo_tune.export", "--out", "best.yaml"),
        ("analysis.report", "--out", "report.html", "--run-dir", "run"),
        ("vmpo_tune.confirm", "--top", "1", "--seeds", "2", "--run-dir", "run"),
    ):
        proc = cli(module, "--study", "toy", "--storage", url, *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outputs += [proc.stdout, proc.stderr]
    bad = cli("vmpo_tune.export", "--study", "nope", "--storage", url, cwd=tmp_path)  # an error message
    assert bad.returncode == 2
    outputs += [bad.stdout, bad.stderr]
    files = [tmp_path / n for n in ("best.yaml", "report.html", "report-trials.csv", "report-trials.parquet")]
    files += [p for p in (tmp_path / "run").rglob("*") if p.is_file() and p.suffix in (".csv", ".yaml", ".log")]
    texts = outputs + [p.read_bytes().decode("latin-1") for p in files] + [_everything_stored(pg_url)]
    assert "***" in _everything_stored(pg_url)  # the command line was stored, with the password masked
    leaks = [i for i, text in enumerate(texts) if secret in text or "Pl4nted" in text or "S3cret" in text]
    assert not leaks, [texts[i][:300] for i in leaks]
