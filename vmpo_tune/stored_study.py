"""Opening a study that a search stored: without creating anything, with errors that say what exists.

Reading commands (``confirm``, ``export``, ``play``, the report) open studies here; opening refuses a
missing file, a database without Optuna's tables (opening would create them in someone's database) and an
unknown study name (listing the ones there), each in one line.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from . import records
from .errors import UserError
from .redaction import redact_url
from .storage import ResilientStorage, holds_optuna_schema, open_storage
from .storage_urls import is_grpc, is_redis, journal_path, parse_url, resolve_url


def open_existing_study(
    study_name: str, storage_url: str | None, run_dir: str | Path | None
) -> tuple[optuna.Study, str, ResilientStorage]:
    """Load a stored study without creating anything; errors say what exists.

    Returns the study, the storage URL it came from, and the storage (for companion studies).
    """
    url = resolve_url(storage_url, Path(run_dir) if run_dir else records.default_run_dir(study_name))
    journal = journal_path(url)
    if journal is not None:
        stored_file = str(journal)
    elif is_redis(url) or is_grpc(url):
        stored_file = None
    else:
        parsed = parse_url(url)
        stored_file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if stored_file and not Path(stored_file).exists():
        raise UserError(f"no stored study at {stored_file}; run a search first, or pass --storage / --run-dir")
    if (
        journal is None and not is_redis(url) and not is_grpc(url) and not holds_optuna_schema(url)
    ):  # opening would create Optuna's tables in someone's database
        raise UserError(
            f"{redact_url(url)} holds no Optuna study (and was left as it was); run a search first, or pass "
            "--storage / --run-dir"
        )
    storage = open_storage(url)
    names = [s.study_name for s in storage.get_all_studies()]
    if study_name not in names:
        listing = ", ".join(sorted(n for n in names if not records.is_companion(n))) or "none"
        raise UserError(f"no study {study_name!r} in {redact_url(url)}; studies there: {listing}")
    return optuna.load_study(study_name=study_name, storage=storage), url, storage


def load_companion(storage: ResilientStorage, study_name: str, held_out: bool = False) -> optuna.Study | None:
    """The confirmation study of ``study_name`` in the same storage (its held-out check's with ``held_out``), if one
    exists; never creates one."""
    name = records.companion_study_name(study_name, held_out)
    if name not in [s.study_name for s in storage.get_all_studies()]:
        return None
    return optuna.load_study(study_name=name, storage=storage)
