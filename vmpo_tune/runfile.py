"""Exported run files: the format ``python -m vmpo_tune.export`` writes and ``train`` / ``play`` read.

A run file holds, for each exported run, the complete agent and train configuration it ran,
its seeds and scores and, for a run that comes from a stored trial, where that trial's best
checkpoint lies (``checkpoint: {seed, path}``). :func:`run_entry` and :func:`confirmed_entry`
write a run's entry, :func:`load_run` reads one run of a file back into a :class:`RunFile`;
every problem is a one-line error naming the file and the key.

The file's ``format`` says which version of this layout it is. Versions 1 and 2 hold the same
run entries (2 added the confirmation, budget, checkpoint and, when it ran, held-out entries around them), so both
read; a newer version, an unknown one or none at all is refused with the fix.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import yaml
from optuna.trial import FrozenTrial

from . import records
from .config import RunConfig, TrainConfig, VMPOConfig
from .errors import UserError
from .redaction import redact_value
from .stats import CandidateStats

FORMAT_PREFIX = "vmpo-tune/run-config/"
FORMAT_VERSION = 2
FORMAT = f"{FORMAT_PREFIX}{FORMAT_VERSION}"
"""What export writes as the file's ``format``."""
READABLE_VERSIONS = (1, 2)

CONFIRMED_KEYS = (
    "n",
    "seeds",
    "returns",
    "best_returns",
    "iqm",
    "iqm_ci",
    "mean",
    "mean_ci",
    "median",
    "min",
    "max",
    "poi",
    "poi_ci",
    "vs_baseline",
    "is_baseline",
)
"""A confirmed run's statistics, as its entry's ``confirmed`` holds them."""


class _PlainDumper(yaml.SafeDumper):
    """A safe dumper that writes every repeated value out in full: no ``&id001`` anchors or ``*id001``
    aliases, so the file reads and edits by hand like any other YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: Mapping[str, Any]) -> str:
    """A run file's YAML text: keys in the document's order, no anchors or aliases."""
    return yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False)


def run_entry(
    rank: int, trial: FrozenTrial | None, config: RunConfig | None = None, seeds: list[int] | None = None
) -> dict[str, Any]:
    """One exported run: a trial's complete configuration and what it scored (or a config alone, which
    ``train`` then runs on ``seeds``, the study's tuning seeds)."""
    record = None if trial is None else records.TrialRecord.of(trial)
    config = config or (records.read_config(trial) if trial is not None else None)  # strict: says what is wrong
    if not config:
        raise UserError(f"trial {trial.number} has no stored config (made by another tool?); cannot export it")
    entry = {
        "rank": rank,
        "trial": None if record is None else record.number,
        "score": None if record is None else float(record.value),
        "seeds": list(seeds or []) if record is None else record.seeds,
        "seed_returns": [] if record is None else record.seed_returns,
        "env_id": config.train.env_id,
        "total_steps": config.total_steps,
        "params": {} if record is None else record.params,
        "agent": config.agent.to_dict(),
        "train": config.train.to_dict(),
    }
    if record is not None:
        entry.update(
            wall_time_s=record.wall_time_s,
            env_steps_per_s=record.env_steps_per_s,
            resumed_from_env_steps=record.resumed_from_env_steps,
        )
        if record.resume_exact is not None:  # only a resumed trial knows whether it resumed exactly
            entry["resume_exact"] = bool(record.resume_exact)
        entry["trial_provenance"] = redact_value(record.provenance)
    return entry


def confirmed_entry(stats: CandidateStats) -> dict[str, Any]:
    """A confirmed run's ``confirmed`` entry: its statistics on the test seeds (:data:`CONFIRMED_KEYS`)."""
    values = stats.as_dict()
    return {k: values[k] for k in CONFIRMED_KEYS}


@dataclasses.dataclass(frozen=True)
class RunFile:
    study: str
    trial: int | None
    score: float | None
    seeds: tuple[int, ...]
    config: RunConfig
    used_seeds: tuple[int, ...] = ()
    """Every seed the search, its confirmation and its held-out check trained (fresh seeds avoid them)."""
    resume_exact: bool | None = None
    """Whether a resumed run continued exactly (False: train will not reproduce it); None: never resumed."""
    checkpoint: Path | None = None
    """The stored best checkpoint of the run's first seed, when the export found one."""
    mujoco: str | None = None
    """The MuJoCo release the trial ran on (its provenance), when the file records it."""
    cpu: str | None = None
    """The name of the CPU the trial ran on (its provenance), when the file records it."""
    cpu_kind: str | None = None
    """The kind of that CPU (:func:`vmpo_tune.provenance.cpu_kind`), when the file records it."""

    @property
    def name(self) -> str:
        return f"trial {self.trial}" if self.trial is not None else "the default configuration"

    @property
    def first_seed(self) -> int:
        """The seed whose run the checkpoint and the default episodes belong to."""
        return self.seeds[0] if self.seeds else self.config.train.seed

    def default_out(self) -> Path:
        """Where ``train`` writes this run's seeds by default (and ``play`` looks for a checkpoint)."""
        tag = f"trial{self.trial}" if self.trial is not None else "default"
        return records.RUNS_DIR / "train" / f"{self.study.replace('/', '-')}-{tag}"


def load_run(path: str | Path, rank: int = 1) -> RunFile:
    """Read one run of an exported file into typed configs (errors name the file and key)."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"run file {path} does not exist; write one with python -m vmpo_tune.export") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise UserError(f"{path}:{line}: malformed YAML: {exc.problem}") from None
    return parse_run(doc, str(path), rank)


def check_format(doc: Any, where: str) -> None:
    """Refuse a document whose ``format`` this version cannot read, with the fix."""
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt is None:
        raise UserError(
            f"{where}: format: missing; this is not a file written by python -m vmpo_tune.export (a file written by "
            f"hand needs the line 'format: {FORMAT}')"
        )
    version = str(fmt).removeprefix(FORMAT_PREFIX) if str(fmt).startswith(FORMAT_PREFIX) else None
    if version is not None and version.isdigit() and int(version) in READABLE_VERSIONS:
        return
    if version is not None and version.isdigit() and int(version) > FORMAT_VERSION:
        raise UserError(
            f"{where}: format {fmt} was written by a newer vmpo-tune (this one reads up to {FORMAT}); upgrade "
            "vmpo-tune: pull the repository and reinstall it (pip install -e .)"
        )
    raise UserError(
        f"{where}: format {fmt!r} is not a vmpo-tune run file format (this version reads "
        f"{', '.join(f'{FORMAT_PREFIX}{v}' for v in READABLE_VERSIONS)}); write one with python -m vmpo_tune.export"
    )


def parse_run(doc: Any, where: str, rank: int = 1) -> RunFile:
    """Run ``rank`` (1 = the best) of an export document; ``where`` names it in errors."""
    check_format(doc, where)
    runs = doc.get("runs")
    if not isinstance(runs, list) or not runs:
        raise UserError(f"{where}: runs: missing; this is not a file written by python -m vmpo_tune.export")
    if rank > len(runs):
        raise UserError(f"{where}: has {len(runs)} run(s); --rank {rank} is out of range")
    run: Mapping[str, Any] = runs[rank - 1]
    try:
        seeds = tuple(int(s) for s in run["seeds"])
        held_out = (doc.get("held_out") or {}).get("test_seeds") or []
        others = [*(doc.get("tuning_seeds") or []), *(doc.get("test_seeds") or []), *held_out]
        used = {*seeds, *(int(s) for s in others)}
        checkpoint = run.get("checkpoint") or {}
        provenance = run.get("trial_provenance") or {}
        return RunFile(
            study=str(doc.get("study", "run")),
            trial=None if run["trial"] is None else int(run["trial"]),
            score=None if run["score"] is None else float(run["score"]),
            seeds=seeds,
            config=RunConfig(
                VMPOConfig.from_dict(run["agent"]), TrainConfig.from_dict(run["train"]), int(run["total_steps"])
            ),
            used_seeds=tuple(sorted(used)),
            resume_exact=_resume_exact(run.get("resume_exact")),
            checkpoint=Path(checkpoint["path"]) if checkpoint.get("path") else None,
            mujoco=(provenance.get("versions") or {}).get("mujoco"),
            cpu=provenance.get("cpu"),
            cpu_kind=provenance.get("cpu_kind"),
        )
    except KeyError as exc:
        raise UserError(f"{where}: runs[{rank - 1}].{exc.args[0]}: missing") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: runs[{rank - 1}]: {exc}") from None


def _resume_exact(value: Any) -> bool | None:
    """``resume_exact`` of a run: true or false for a resumed run; absent (or null, as files written before
    the key was left out for runs never resumed) when the run was not resumed."""
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"resume_exact: must be true or false, got {value!r}")
