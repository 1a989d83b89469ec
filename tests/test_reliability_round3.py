"""Red-team cases of round 3 (RELIABILITY.md): databases that are not ours, reserved names, liveness flags,
in-memory storages, missing drivers, and confirmation units that failed for a fault."""

from __future__ import annotations

import sqlite3

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from vmpo_tune import records
from vmpo_tune.records import DIVERGED

from .search_helpers import CALM, TOY_STUDY, cli, load, write_study


def one_line_exit_2(run, *needles: str) -> None:
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in run.stderr, run.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def sqlite_state(path) -> tuple:
    conn = sqlite3.connect(path)
    try:
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))
        return tables, conn.execute("PRAGMA journal_mode").fetchone()[0], path.read_bytes()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "command",
    [
        ("vmpo_tune.export", "--study", "toy"),
        ("vmpo_tune.adopt", "--study", "toy"),
        ("vmpo_tune.confirm", "--study", "toy"),
        ("analysis.report", "--study", "toy"),
        ("vmpo_tune.play", "--study", "toy"),
    ],
)
def test_read_only_commands_leave_a_database_without_a_study_as_it_was(tmp_path, command):
    db = tmp_path / "theirs.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    conn.execute("INSERT INTO invoices (amount) VALUES (12.5)")
    conn.commit()
    conn.close()
    before = sqlite_state(db)
    run = cli(*command[:1], *command[1:], "--storage", f"sqlite:///{db}", cwd=tmp_path)
    one_line_exit_2(run, "holds no Optuna study")
    assert sqlite_state(db) == before  # no table created, journal mode unchanged, not a byte written


@pytest.mark.server
def test_a_server_database_without_a_study_gets_no_tables(tmp_path, pg_url):
    run = cli("vmpo_tune.export", "--study", "toy", "--storage", pg_url, cwd=tmp_path)
    one_line_exit_2(run, "holds no Optuna study")
    engine = sqlalchemy.create_engine(pg_url)
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_reserved_names_in_memory_storages_and_liveness_flags_are_one_line(tmp_path):
    write_study(tmp_path)
    for companion in ("toy/confirm", "toy/held-out"):
        one_line_exit_2(
            cli("vmpo_tune.search", "--study", "toy.yaml", "--study-name", companion, cwd=tmp_path), "reserved"
        )
    one_line_exit_2(
        cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", "sqlite:///:memory:", cwd=tmp_path), "in-memory"
    )
    flags = ("--heartbeat-interval", "10", "--grace-period", "2")
    one_line_exit_2(cli("vmpo_tune.confirm", "--study", "toy", *flags, cwd=tmp_path), "grace period")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgresql+psycopg2://u@127.0.0.1:5432/db", "vmpo-tune[postgres]"),
        ("mysql+mysqldb://u@127.0.0.1:3306/db", "vmpo-tune[mysql]"),
    ],
)
def test_a_storage_whose_driver_is_missing_names_the_install(tmp_path, url, hint):
    write_study(tmp_path)
    for command in (("vmpo_tune.search", "--study", "toy.yaml"), ("vmpo_tune.export", "--study", "toy")):
        one_line_exit_2(cli(*command, "--storage", url, cwd=tmp_path), "is not installed", hint)


def test_units_that_failed_for_a_fault_are_queued_again_and_diverged_ones_are_not(tmp_path):
    write_study(tmp_path, CALM)
    url = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    args = ("--study", "toy", "--run-dir", "run", "--top", "1", "--seeds", "2")
    assert cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "2", cwd=tmp_path).returncode == 0
    first = cli("vmpo_tune.confirm", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    companion = load(url, records.confirm_study_name("toy"))
    done = companion.get_trials()
    template = done[0]

    def failed_unit(seed: int, reason: str):
        attrs = {**template.user_attrs, records.SEEDS: [seed], records.FAIL_REASON: reason}
        return optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=attrs)

    plan = records.read_confirm_plan(companion)
    seeds = plan.test_seeds
    lost = failed_unit(seeds[-1] + 1, "no heartbeat for 40 s: its worker died, was killed or lost the storage")
    diverged = failed_unit(seeds[-1] + 2, f"{DIVERGED}the V-MPO loss became nan")
    companion.add_trial(lost)
    companion.add_trial(diverged)
    again = cli("vmpo_tune.confirm", *args[:-1], "4", cwd=tmp_path)  # the two new seeds are these units' seeds
    assert again.returncode == 0, again.stderr
    units = load(url, records.confirm_study_name("toy")).get_trials()
    by_seed = {}
    for t in units:
        by_seed.setdefault((t.user_attrs[records.CANDIDATE], t.user_attrs[records.SEEDS][0]), []).append(t)
    label = template.user_attrs[records.CANDIDATE]
    lost_runs = by_seed[(label, seeds[-1] + 1)]
    assert [t.state for t in lost_runs] == [TrialState.FAIL, TrialState.COMPLETE]  # queued again, and it ran
    assert lost_runs[1].system_attrs[records.RETRY_OF] == lost_runs[0].number
    assert [t.state for t in by_seed[(label, seeds[-1] + 2)]] == [TrialState.FAIL]  # a result, not retried
    assert "1 failed" in again.stdout  # the diverged unit stays counted as the candidate's failure


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"- 1\n- 2\n", "expected an exported run file or a mapping"),
        (b"1: 2\n", "is not a config field name"),
        (b"\x00\x01binary", "malformed YAML"),
        (b"\xff\xfe\x80", "not a UTF-8 text file"),
        (b"train: 7\n", "train: expected a mapping"),
        (b"agent: [1, 2]\n", "agent: expected a mapping"),
        (b"epsilon_eta: true\n", "is not a finite number"),
        (b"epsilon_eta: .inf\n", "is not a finite number"),
        (b"epsilon_eta: .nan\n", "is not a finite number"),
        (b"policy_lr: true\n", "is not one of the study's choices"),
        (b"runs: 3\n", "runs: expected a list"),
        (b"{}\n", "queues nothing"),
        (b"[]\n", "an empty list queues nothing"),
    ],
)
def test_enqueue_files_of_the_wrong_shape_are_one_line_before_anything_is_stored(tmp_path, content, needle):
    write_study(tmp_path)
    (tmp_path / "bad.yaml").write_bytes(content)
    run = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "3", "--enqueue", "bad.yaml", cwd=tmp_path)
    one_line_exit_2(run, "bad.yaml", needle)
    assert not (tmp_path / "runs").exists()


def test_an_enqueued_key_that_its_own_values_switch_off_is_reported(tmp_path):
    space = {
        "advantage_estimator": {"choices": ["returns", "gae"], "default": "gae"},
        "gae_lambda": {"low": 0.8, "high": 1.0, "default": 0.9, "when": {"advantage_estimator": "gae"}},
    }
    write_study(tmp_path, {**TOY_STUDY, "search_space": space})
    (tmp_path / "mine.yaml").write_text("advantage_estimator: returns\ngae_lambda: 0.95\n")
    run = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "3", "--enqueue", "mine.yaml", cwd=tmp_path)
    one_line_exit_2(run, "mine.yaml: gae_lambda: not used with these values", "when advantage_estimator: gae")
    assert not (tmp_path / "runs").exists()


def test_an_enqueue_without_room_is_refused_before_the_study_exists_and_a_rerun_resumes(tmp_path):
    write_study(tmp_path)
    (tmp_path / "mine.yaml").write_text("policy_lr: 1.0e-4\nepsilon_eta: 0.05\n")
    cramped = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "1", "--enqueue", "mine.yaml", cwd=tmp_path)
    one_line_exit_2(cramped, "no room", "at least 2")
    assert not (tmp_path / "runs").exists()
    args = ("--study", "toy.yaml", "--trials", "2", "--enqueue", "mine.yaml")
    assert cli("vmpo_tune.search", *args, cwd=tmp_path).returncode == 0
    again = cli("vmpo_tune.search", *args, cwd=tmp_path)  # the same command again: it is queued already
    assert again.returncode == 0, again.stderr
    assert len(load(f"sqlite:///{tmp_path / 'runs' / 'toy' / 'study.db'}").trials) == 2


def _bomb() -> str:
    levels = "abcdefghij"
    text = 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
    for prev, name in zip(levels, levels[1:]):
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    return text


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper"),
        (_bomb(), "aliases"),
        ("x: " + "y" * (1 << 20) + "\n", "too large"),
    ],
)
def test_hostile_study_files_are_one_line_and_do_not_break_other_commands(tmp_path, content, needle):
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "hostile.yaml").write_text(content)
    write_study(studies, name="fine")
    run = cli("vmpo_tune.search", "--study", "hostile", "--trials", "1", cwd=tmp_path)
    one_line_exit_2(run, "hostile.yaml", needle)
    helped = cli("vmpo_tune.search", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "hostile: (unreadable study file)" in helped.stdout
    fine = cli("vmpo_tune.search", "--study", "fine", "--trials", "1", cwd=tmp_path)
    assert fine.returncode == 0, fine.stderr


def test_a_tensorboard_folder_that_cannot_be_one_is_refused_before_the_first_trial(tmp_path):
    write_study(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    run = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "1", "--tensorboard", "afile/tb", cwd=tmp_path)
    one_line_exit_2(run, "afile is a file")
    assert not (tmp_path / "runs").exists()


def test_a_result_for_a_trial_failed_meanwhile_is_dropped_not_a_traceback(tmp_path):
    """A worker whose trial was failed as stale by another worker (its heartbeats were lost in an outage)
    finishes the run and then finds the trial FAIL: the result is dropped with a warning, never a crash."""
    from vmpo_tune.search.worker import _tell
    from vmpo_tune.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", create_parent=True)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    trial = study.ask()
    storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # another worker failed it as stale
    assert _tell(study, trial, TrialState.COMPLETE, 123.0, None, None) is False
    assert _tell(study, trial, TrialState.PRUNED, None, "pruned", None) is False
    assert study.trials[0].state == TrialState.FAIL and study.trials[0].value is None


def test_a_worker_retries_its_opening_for_its_patience_a_commands_first_opening_only_briefly(tmp_path, monkeypatch):
    """The red team's PostgreSQL connection killer, made deterministic: every attempt to open the database fails
    with a dropped connection for 1.5 s. A command's first opening gives up after FIRST_OPEN_PATIENCE (made 0.5 s
    here) with one line; a worker, whose command has already opened the storage, waits it out like any other
    fault, and reports the storage lost (not a bad URL) only after its own patience."""
    import time

    from vmpo_tune import storage as storage_module
    from vmpo_tune.errors import UserError
    from vmpo_tune.storage_faults import StorageUnavailable

    url = f"sqlite:///{tmp_path / 'study.db'}"
    real = storage_module._create_rdb_storage
    attempts = []

    def killed_for(seconds: float):
        start = time.monotonic()

        def create(*args, **kwargs):
            attempts.append(time.monotonic() - start)
            if time.monotonic() - start < seconds:
                dropped = Exception("server closed the connection unexpectedly")
                raise sqlalchemy.exc.OperationalError("SELECT 1", {}, dropped)
            return real(*args, **kwargs)

        monkeypatch.setattr(storage_module, "_create_rdb_storage", create)

    monkeypatch.setattr(storage_module, "FIRST_OPEN_PATIENCE", 0.5)
    killed_for(1.5)
    with pytest.raises(UserError, match="cannot use the storage") as first:
        storage_module.open_storage(url, patience=30)
    assert not isinstance(first.value, StorageUnavailable) and attempts[-1] < 1.5
    attempts.clear()
    killed_for(1.5)
    opened = storage_module.open_storage(url, patience=30, opened_before=True)
    assert attempts[-1] >= 1.5 and len(attempts) >= 3  # retried through the faults, then opened
    optuna.create_study(storage=opened, study_name="s")
    opened.close()
    killed_for(60)
    with pytest.raises(StorageUnavailable, match="failed for 1 s"):
        storage_module.open_storage(url, patience=1, opened_before=True)
