"""The trials of a study as one flat pandas table, and its CSV / Parquet export.

Columns, one row per trial (sorted by number):

* ``number``, ``state`` (``COMPLETE``, ``PRUNED``, ``FAIL``, ...), ``value``,
  ``datetime_start``, ``datetime_complete``, ``duration_s``;
* ``retried`` (a FAIL whose retry is another trial) and ``retry_of`` (JSON list of the
  failed trials this one retries);
* ``n_reports``, ``last_step``, ``last_intermediate``: the trial's learning curve so far;
* ``params.<name>``: the sampled parameters;
* ``user_attrs.<dotted.path>``: user attributes with nested dicts flattened, e.g.
  ``user_attrs.config.agent.policy_lr``, ``user_attrs.env_steps_per_s``,
  ``user_attrs.provenance.versions.torch``. Lists are stored as JSON text
  (``user_attrs.seed_returns`` = ``"[50.0]"``).

Any text that holds a URL has its password removed (a ``--storage`` URL in the recorded command).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from vmpo_tune import records
from vmpo_tune.records import retried_numbers
from vmpo_tune.redaction import redact

log = logging.getLogger(__name__)

BASE_COLUMNS = [
    "number",
    "state",
    "value",
    "datetime_start",
    "datetime_complete",
    "duration_s",
    "retried",
    "retry_of",
    "n_reports",
    "last_step",
    "last_intermediate",
]


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts become dotted keys; lists become JSON text; strings are redacted."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}"))
        return out
    if isinstance(value, (list, tuple)):
        return {prefix: redact(json.dumps(value, default=str))}
    if isinstance(value, str):
        return {prefix: redact(value)}
    return {prefix: value}


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def trial_row(trial: FrozenTrial, retried: set[int]) -> dict[str, Any]:
    steps = sorted(trial.intermediate_values)
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        "duration_s": duration,
        "retried": trial.state == TrialState.FAIL and trial.number in retried,
        "retry_of": json.dumps(records.TrialRecord.of(trial).retry_of),
        "n_reports": len(steps),
        "last_step": steps[-1] if steps else None,
        "last_intermediate": _finite_or_none(trial.intermediate_values[steps[-1]]) if steps else None,
    }
    for name, param in trial.params.items():
        row[f"params.{name}"] = param
    row.update(flatten(trial.user_attrs, "user_attrs"))
    return row


def trials_table(trials: Iterable[FrozenTrial]) -> pd.DataFrame:
    """One row per trial; the column order is the base columns, then params, then user attributes."""
    trials = sorted(trials, key=lambda t: t.number)
    retried = retried_numbers(trials)
    rows = [trial_row(t, retried) for t in trials]
    extra = {k for r in rows for k in r if k not in BASE_COLUMNS}
    extra = sorted(extra, key=lambda k: (not k.startswith("params."), k))
    frame = pd.DataFrame(rows, columns=BASE_COLUMNS + extra)
    for column in ("number", "n_reports"):
        frame[column] = frame[column].astype("int64")
    return frame


def study_table(study: optuna.Study) -> pd.DataFrame:
    return trials_table(study.get_trials(deepcopy=False))


def table_paths(html_path: Path) -> tuple[Path, Path]:
    """Where the CSV and Parquet files go: beside the HTML, ``<stem>-trials.csv`` / ``.parquet``."""
    base = html_path.with_name(f"{html_path.stem}-trials")
    return base.with_suffix(".csv"), base.with_suffix(".parquet")


def write_tables(frame: pd.DataFrame, html_path: Path) -> list[Path]:
    """Write the CSV (always) and the Parquet file (when pyarrow is installed); returns what was written."""
    csv_path, parquet_path = table_paths(html_path)
    frame.to_csv(csv_path, index=False)
    written = [csv_path]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        log.info("pyarrow is not installed: no Parquet copy of the trials table")
        return written
    try:
        frame.to_parquet(parquet_path, index=False)
    except Exception as exc:  # a column pyarrow cannot type (mixed kinds of user attribute)
        log.warning("could not write %s: %s (the CSV has everything)", parquet_path, exc)
        parquet_path.unlink(missing_ok=True)
    else:
        written.append(parquet_path)
    return written
