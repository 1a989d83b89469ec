"""What the resumable campaigns (``search_efficiency.py``, ``study_results.py``) share: running a command of ours as
a child, and keeping a consistent copy of a live SQLite study storage in ``results/``."""

from __future__ import annotations

import collections
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmpo_tune import provenance, records  # noqa: E402
from vmpo_tune.errors import UserError  # noqa: E402
from vmpo_tune.records import DIVERGED  # noqa: E402
from vmpo_tune.search.confirmation import config_id, select_candidates  # noqa: E402
from vmpo_tune.search.study import recorded_simulator  # noqa: E402


def cli(*args: str) -> None:
    """``python -m ARGS`` from the repository root, one torch thread, no stdin; a failure stops the campaign."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", *args]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)


def backup(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite file (WAL included), written atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".db.tmp")
    tmp.unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(tmp)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.replace(tmp, target)


def keep_copies(pairs: Iterable[tuple[Path, Path]]) -> None:
    """A campaign's ``snapshot``: a consistent copy of each (live, kept) storage whose live file exists."""
    for live, kept in pairs:
        if live.exists():
            backup(live, kept)
            print(f"kept {kept.relative_to(ROOT)}")


def continue_from_kept(live: Path, kept: Path) -> None:
    """On a new machine, a campaign continues from the copy kept in the repository."""
    live.parent.mkdir(parents=True, exist_ok=True)
    if not live.exists() and kept.exists():
        shutil.copyfile(kept, live)


def recorded_cpus(data: dict[str, Any] | None) -> set[tuple[str | None, str | None]]:
    """The (name, kind) of the CPU each run of a campaign storage (:func:`load_campaign_study`) recorded in its
    provenance; kind None for runs stored before runs recorded it."""
    if not data:
        return set()
    runs = [*data["trials"], *data["units"], *data["held_out_units"]]
    recorded = [run.user_attrs.get(records.PROVENANCE) for run in runs]
    return {(p.get("cpu"), p.get("cpu_kind")) for p in recorded if p}


def check_cpu_kind(campaign: str, recorded: set[tuple[str | None, str | None]]) -> str | None:
    """Raise :class:`UserError` when runs of a campaign that must run on one kind of CPU recorded another kind than
    this machine's (``recorded``: :func:`recorded_cpus`); a note when some recorded only this CPU's name, which
    cannot tell; None when all is this kind."""
    other = sorted({kind or name for name, kind in recorded if provenance.same_kind(name, kind) is False})
    if other:
        raise UserError(
            f"campaign {campaign}: its kept runs ran on {' and '.join(other)}, this machine is "
            f"{provenance.cpu_kind()}: a campaign's arms run on one kind of CPU, so run it on a machine of that kind "
            f'(README, "{provenance.REPRODUCTION_HELP}", says how a newer CPU can compute an older one\'s bits)'
        )
    unsure = sorted({name for name, kind in recorded if name and provenance.same_kind(name, kind) is None})
    if not unsure:
        return None
    return (
        f"note: campaign {campaign}'s kept runs recorded only their CPU's name ({' and '.join(unsure)}), and CPUs of "
        f"one name differ in their instruction sets (this one: {provenance.cpu_kind()}); check that this is their "
        "kind before adding runs: export an arm's tuning-seed run (export --by search), train it (train --config) "
        "and compare the scores"
    )


def load_campaign_study(study_name: str, db: Path, top: int | None = None) -> dict[str, Any] | None:
    """What a campaign's SQLite storage holds for one study: search trials, confirmation units, the ranked
    confirmation, the held-out check's units and statistics, and the simulator release its runs used (None: no such
    file or study). With ``top``, also ``wanted``: the configuration keys a ``confirm --top TOP`` would plan now (the
    search's best ``top`` distinct trials and the default), so that a search that found new best trials after its
    confirmation was planned is seen as not confirmed, even when every unit planned has run."""
    if not db.exists():
        return None
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    try:
        names = [s.study_name for s in storage.get_all_studies()]
        if study_name not in names:
            return None
        study = optuna.load_study(study_name=study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        companion = records.confirm_study_name(study_name)
        confirm = optuna.load_study(study_name=companion, storage=storage) if companion in names else None
        checked = records.held_out_study_name(study_name)
        held_out = optuna.load_study(study_name=checked, storage=storage) if checked in names else None
        return {
            "trials": trials,
            "finished": records.budget_counts(trials).finished,
            "units": confirm.get_trials(deepcopy=False) if confirm else [],
            "planned": list(records.read_confirm_plan(confirm).candidates) if confirm else [],
            "confirmation": records.read_confirmation(study),
            "held_out_units": held_out.get_trials(deepcopy=False) if held_out else [],
            "held_out": records.read_held_out(study),
            "simulator": recorded_simulator(study) or "",
            "wanted": _wanted(study, top) if top else [],
        }
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _wanted(study: optuna.Study, top: int) -> list[str]:
    """The configuration keys of the candidates ``confirm --top`` would plan (none while it would refuse)."""
    try:
        return [config_id(c.config) for c in select_candidates(study, top)]
    except UserError:  # no complete trial, or no recorded default: nothing to confirm yet
        return []


def _is_done(unit) -> bool:
    """A unit with a result: complete, or diverged (a result too: it will not run again)."""
    return unit.state == TrialState.COMPLETE or (
        unit.state == TrialState.FAIL and str(unit.user_attrs.get(records.FAIL_REASON, "")).startswith(DIVERGED)
    )


def done_units(data: dict) -> tuple[int, int]:
    """Confirmation units complete, and complete or diverged."""
    complete = sum(t.state == TrialState.COMPLETE for t in data["units"])
    return complete, sum(_is_done(t) for t in data["units"])


def confirmation_done(data: dict | None, seeds: int) -> bool:
    """Whether a stored confirmation has a result for every *planned* candidate on each of its ``seeds`` test seeds
    (a confirmation stopped early stores a ranking of only the candidates with a result so far)."""
    if not (data and data["confirmation"]):
        return False
    labels = [c.label for c in data.get("planned") or data["confirmation"]]
    done = results_per_candidate(data)
    return all(done[label] >= seeds for label in labels)


def results_per_candidate(data: dict, key: str = "units") -> collections.Counter:
    """Units with a result, per candidate label: the confirmation's, or with ``key="held_out_units"`` the held-out
    check's."""
    return collections.Counter(t.user_attrs.get(records.CANDIDATE) for t in data[key] if _is_done(t))
