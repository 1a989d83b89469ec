"""The live view: ``optuna-dashboard`` on a study's storage, and the study's markdown note.

For the default storage of a search run with ``--out runs/hopper``::

    optuna-dashboard sqlite:///runs/hopper/study.db --artifact-dir runs/hopper/artifacts \\
        --host 127.0.0.1 --port 8080

then open http://127.0.0.1:8080/dashboard. ``--artifact-dir`` lets the dashboard list and
serve each complete trial's best checkpoint and learning-curve CSV.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Iterable

from vmpo_tune.search.storage import redact_url

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def dashboard_argv(storage_url: str, artifact_dir: Path | str | None = None, host: str = DEFAULT_HOST,
                   port: int = DEFAULT_PORT) -> list[str]:  # fmt: skip
    """The ``optuna-dashboard`` command line (as a list) for a storage and its artifact folder."""
    argv = ["optuna-dashboard", storage_url]
    if artifact_dir is not None:
        argv += ["--artifact-dir", str(artifact_dir)]
    return argv + ["--host", host, "--port", str(port)]


def dashboard_command(storage_url: str, artifact_dir: Path | str | None = None, host: str = DEFAULT_HOST,
                      port: int = DEFAULT_PORT) -> str:  # fmt: skip
    """The same command as one line to show people; any password in the URL is replaced by ``***``."""
    return shlex.join(dashboard_argv(redact_url(storage_url), artifact_dir, host, port))


def _steps(n: object) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def study_note(spec_attrs: dict, params: Iterable[str] | None = None, n_trials: int | None = None) -> str:
    """Markdown for ``optuna_dashboard.save_note(study, body)``: what the study tunes, env, budget.

    ``spec_attrs`` is the ``vmpo_tune.study`` study user attribute (name, env_id,
    description, total_steps, seeds_per_trial, aggregate, objective); ``params`` (the
    searched parameter names) and ``n_trials`` (the trial budget) are added when given.
    Missing keys are left out, so any dict gives a note.
    """
    name = spec_attrs.get("name") or "study"
    lines = [f"## {name}", ""]
    if spec_attrs.get("description"):
        lines += [str(spec_attrs["description"]), ""]
    tunes = "V-MPO hyperparameters"
    if params:
        tunes += ": " + ", ".join(f"`{p}`" for p in params)
    lines.append(f"- **Tunes:** {tunes}")
    if spec_attrs.get("env_id"):
        lines.append(f"- **Environment:** `{spec_attrs['env_id']}`")
    seeds = spec_attrs.get("seeds_per_trial")
    if spec_attrs.get("total_steps") is not None:
        per_seed = f"{_steps(spec_attrs['total_steps'])} env steps"
        lines.append(f"- **Budget per trial:** {per_seed}" + (f" on each of {seeds} seed(s)" if seeds else ""))
    if n_trials is not None:
        lines.append(f"- **Trials:** {n_trials}")
    if spec_attrs.get("objective") or spec_attrs.get("aggregate"):
        objective = spec_attrs.get("objective", "final")
        aggregate = spec_attrs.get("aggregate", "mean")
        lines.append(f"- **Objective:** maximise the {objective} evaluation return, {aggregate} over the seeds")
    lines += ["", "Intermediate values are evaluation returns reported at env-step marks; each complete trial's "
                  "best checkpoint and learning curve are its artifacts."]  # fmt: skip
    return "\n".join(lines) + "\n"
