"""The private Optuna API vmpo-tune relies on (vmpo_tune.optuna_private) still behaves as it did when checked."""

from __future__ import annotations

import ast
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
