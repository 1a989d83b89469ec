"""Exported run files: the format ``python -m vmpo_tune.export`` writes and ``train`` / ``play`` read.

A run file holds, for each exported run, the complete agent and train configuration it ran,
its seeds and scores and, for a run that comes from a stored trial, where that trial's best
checkpoint lies (``checkpoint: {seed, path}``). :func:`load_run` reads one run of a file back
into typed configs; every problem is a one-line error naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import records
from .config import TrainConfig, VMPOConfig
from .errors import UserError

FORMAT = "vmpo-tune/run-config/2"


class _PlainDumper(yaml.SafeDumper):
    """A safe dumper that writes every repeated value out in full: no ``&id001`` anchors or ``*id001``
    aliases, so the file reads and edits by hand like any other YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: Mapping[str, Any]) -> str:
    """A run file's YAML text: keys in the document's order, no anchors or aliases."""
    return yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False)


@dataclasses.dataclass(frozen=True)
class RunFile:
    study: str
    trial: int | None
    score: float | None
    seeds: tuple[int, ...]
    total_steps: int
    agent: VMPOConfig
    train: TrainConfig
    used_seeds: tuple[int, ...] = ()
    """Every seed the search and its confirmation trained (fresh seeds avoid them)."""
    resume_exact: bool | None = None
    """Whether a resumed run continued exactly (False: train will not reproduce it); None: never resumed."""
    checkpoint: Path | None = None
    """The stored best checkpoint of the run's first seed, when the export found one."""
    mujoco: str | None = None
    """The MuJoCo release the trial ran on (its provenance), when the file records it."""

    @property
    def name(self) -> str:
        return f"trial {self.trial}" if self.trial is not None else "the default configuration"

    @property
    def first_seed(self) -> int:
        """The seed whose run the checkpoint and the default episodes belong to."""
        return self.seeds[0] if self.seeds else self.train.seed

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


def parse_run(doc: Any, where: str, rank: int = 1) -> RunFile:
    """Run ``rank`` (1 = the best) of an export document; ``where`` names it in errors."""
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list) or not runs:
        raise UserError(f"{where}: runs: missing; this is not a file written by python -m vmpo_tune.export")
    if rank > len(runs):
        raise UserError(f"{where}: has {len(runs)} run(s); --rank {rank} is out of range")
    run: Mapping[str, Any] = runs[rank - 1]
    try:
        seeds = tuple(int(s) for s in run["seeds"])
        others = [*(doc.get("tuning_seeds") or []), *(doc.get("test_seeds") or [])]
        used = {*seeds, *(int(s) for s in others)}
        checkpoint = run.get("checkpoint") or {}
        return RunFile(
            study=str(doc.get("study", "run")),
            trial=None if run["trial"] is None else int(run["trial"]),
            score=None if run["score"] is None else float(run["score"]),
            seeds=seeds,
            total_steps=int(run["total_steps"]),
            agent=VMPOConfig.from_dict(run["agent"]),
            train=TrainConfig.from_dict(run["train"]),
            used_seeds=tuple(sorted(used)),
            resume_exact=_resume_exact(run.get("resume_exact")),
            checkpoint=Path(checkpoint["path"]) if checkpoint.get("path") else None,
            mujoco=((run.get("trial_provenance") or {}).get("versions") or {}).get("mujoco"),
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
