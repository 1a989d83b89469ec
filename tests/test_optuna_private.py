"""The private Optuna API vmpo-tune relies on (vmpo_tune.optuna_private) still behaves as it did when checked."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import optuna
from optuna.storages import BaseStorage

from vmpo_tune import optuna_private

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_optuna_is_a_checked_release():
    assert optuna.__version__ in optuna_private.CHECKED_WITH, (
        f"Optuna {optuna.__version__} is not among the releases vmpo_tune/optuna_private.py was checked with "
        f"{optuna_private.CHECKED_WITH}: check Study._storage and Trial._trial_id, then add it"
    )


def test_storage_and_trial_ids_reach_the_trials_this_process_did_not_ask_for(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    mine = study.ask()
    other = optuna.load_study(study_name="s", storage=storage)  # another worker's view of the same study
    assert isinstance(optuna_private.storage_of(other), BaseStorage)
    tid = optuna_private.trial_id(mine)
    assert tid == storage.get_trial_id_from_study_id_trial_number(study._study_id, mine.number)
    optuna_private.set_system_attr(other, tid, "k", 1.5)  # the heartbeat's way: a system attribute by id
    study.tell(mine, 3.0)
    fresh = optuna_private.fresh(other, mine)
    assert fresh.system_attrs["k"] == 1.5 and fresh.value == 3.0 and optuna_private.trial_id(fresh) == tid


def test_no_other_module_touches_optunas_private_api():
    offenders = []
    for path in [*(ROOT / "vmpo_tune").rglob("*.py"), *(ROOT / "analysis").rglob("*.py")]:
        if path.name == "optuna_private.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("_storage", "_trial_id", "_study_id"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


def test_the_cache_reads_only_unfinished_and_new_trials_and_passes_sessions_on(tmp_path):
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 's.db'}"
    cached = optuna_private.CachedRDB(optuna.storages.RDBStorage(url))
    study = optuna.create_study(storage=cached, study_name="s", direction="maximize")
    done, _ = study.ask(), study.ask()
    study.tell(done, 1.0)
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "RUNNING"]  # read once: the finished is kept
    with cached.engine.begin() as conn:  # another process changes both rows behind the cache (as no writer may
        conn.execute(sqlalchemy.text("UPDATE trial_values SET value = 9.0"))  # change a finished trial's)
        conn.execute(sqlalchemy.text("UPDATE trials SET state = 'FAIL' WHERE number = 1"))
    trials = study.get_trials()
    assert trials[0].value == 1.0, "the finished trial was read again from the database"
    assert trials[1].state.name == "FAIL", "the unfinished trial was not read again"
    late = study.ask()  # a new trial is seen too
    assert [t.number for t in study.get_trials()] == [0, 1, late.number]
    cached.remove_session()  # passed on to the database's session (Optuna's cache does not)
    copied = pickle.loads(pickle.dumps(cached))  # it pickles, cache and all
    assert copied.get_all_trials(study._study_id)[0].value == 1.0
    fresh = optuna_private.CachedRDB(optuna.storages.RDBStorage(url))
    assert fresh.get_all_trials(study._study_id)[0].value == 9.0  # a new cache reads everything once
