"""The stored-study format: every attribute key, typed readers and writers, the default paths.

A vmpo-tune study is an ordinary Optuna study; what it adds lives in user and system
attributes whose keys are declared here and nowhere else. Producers (the objective, the
worker, the confirmation stage) write through the ``write_*`` / ``set_*`` functions;
consumers (export, train, the report, the tables, the figures, the dashboard note) read
through :class:`StudyInfo` and :class:`TrialRecord`.

Study user attributes
    ``vmpo_tune.study``: :class:`StudyInfo` (env, budget, seeds, objective, search space,
    the default configuration); ``vmpo_tune.fingerprint``: what must not change between
    runs of one study.

Trial user attributes
    the complete configuration the trial ran, its seeds, per-seed final and best returns,
    timing, provenance, the resume record of an unfinished trial, the fail reason; for a
    confirmation unit also the candidate it belongs to.

A confirmation is the companion study ``<name>/confirm`` in the same storage: one trial
per (candidate, test seed); a held-out check of its winner is the companion ``<name>/held-out``, the same way.

Why this module is long (about 480 lines): it is the whole stored format, every key with its typed
reader and writer, and it is kept in one place on purpose, so that a change of format is one diff.
It holds no logic beyond reading, writing and counting; opening a study is :mod:`.stored_study`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .config import RunConfig
from .errors import UserError
from .paths import BEST_CHECKPOINT
from .stats import CandidateStats

RUNS_DIR = Path("runs")

# study user attributes
STUDY_INFO = "vmpo_tune.study"
FINGERPRINT = "vmpo_tune.fingerprint"
CONFIRMATION = "vmpo_tune.confirmation"
CONFIRM_PLAN = "vmpo_tune.confirm_plan"
HELD_OUT = "vmpo_tune.held_out"

# trial user attributes
CONFIG = "config"
SEEDS = "seeds"
SEED_RETURNS = "seed_returns"
SEED_BEST_RETURNS = "seed_best_returns"
SEED_CURVES = "seed_curves"
WALL_TIME = "wall_time_s"
COMPUTE_CPU = "compute_cpu_s"
ENV_STEPS_TRAINED = "env_steps_trained"
ENV_STEPS_PER_S = "env_steps_per_s"
PROVENANCE = "provenance"
RESUME = "resume_state"
RESUMED_FROM = "resumed_from_env_steps"
RESUME_EXACT = "resume_exact"
FAIL_REASON = "fail_reason"
DIVERGED = "diverged: "
"""How a trial's fail reason starts when its run diverged (a result, not a fault: it is not retried)."""
ENQUEUED = "enqueued"
CANDIDATE = "candidate"
SOURCE_TRIAL = "source_trial"

# trial system attributes (RETRY_HISTORY is Optuna's own key, read by its tools too)
HEARTBEAT = "vmpo_tune:heartbeat"
RETRY_HISTORY = "retry_history"
RETRY_OF = "failed_trial"
FAILURES = "vmpo_tune:failures"

INHERITED = (CONFIG, SEEDS, ENQUEUED, CANDIDATE, SOURCE_TRIAL, SEED_CURVES, PROVENANCE)
"""What a retry takes over from the attempt it replaces (its resume record is passed on explicitly)."""

# artifacts: a finished trial's files per seed as ``seed<S>_<file>``; videos of a trial's episodes on the study
VIDEO_MIMETYPE = "video/mp4"

DEFAULT_ENQUEUED = "default configuration"
ENQUEUED_FROM = "from "
"""How a trial queued from a file (``search --enqueue FILE``) records it: ``from FILE``."""
CONFIRM_SUFFIX = "/confirm"
HELD_OUT_SUFFIX = "/held-out"
COMPANION_SUFFIXES = (CONFIRM_SUFFIX, HELD_OUT_SUFFIX)
"""Study names ending in these are a study's companions (its confirmation units), never a search's own."""


def default_run_dir(study_name: str) -> Path:
    """Where a study's default storage, per-trial files and artifacts go: ``runs/<study>``."""
    return RUNS_DIR / study_name.replace("/", "-")


def artifact_dir(study_name: str, run_dir: str | Path | None = None) -> Path:
    """A study's default artifact store folder: ``<run dir>/artifacts``."""
    return (Path(run_dir) if run_dir else default_run_dir(study_name)) / "artifacts"


def confirm_study_name(study_name: str) -> str:
    """The companion study that holds a study's confirmation units."""
    return f"{study_name}{CONFIRM_SUFFIX}"


def held_out_study_name(study_name: str) -> str:
    """The companion study that holds the held-out check of a study's confirmed winner."""
    return f"{study_name}{HELD_OUT_SUFFIX}"


def companion_study_name(study_name: str, held_out: bool = False) -> str:
    """A study's confirmation companion, or with ``held_out`` its held-out check's."""
    return held_out_study_name(study_name) if held_out else confirm_study_name(study_name)


def is_companion(study_name: str) -> bool:
    return study_name.endswith(COMPANION_SUFFIXES)


# ---------------------------------------------------------------------------- study


@dataclass(frozen=True)
class StudyInfo:
    """What a stored study tunes, as recorded when it was created."""

    name: str = ""
    env_id: str = ""
    description: str = ""
    total_steps: int | None = None
    seeds_per_trial: int = 1
    aggregate: str = "mean"
    objective: str = "final"
    search: str = "standard"
    race_seeds: int = 0
    """With racing: the seeds a configuration can earn (0 for a standard search)."""
    seed: int = 0
    eval_interval: int | None = None
    eval_episodes: int | None = None
    search_space: list[dict] = field(default_factory=list)
    default_config: RunConfig | None = None
    """The complete configuration of the study's documented default."""

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> StudyInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in attrs.items() if k in known}
        if values.get("default_config"):
            values["default_config"] = _run_config(values["default_config"], "the study's default configuration")
        return cls(**values)

    def to_attrs(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["default_config"] = self.default_config.to_dict() if self.default_config else None
        return out

    @property
    def tuning_seeds(self) -> list[int]:
        """The seeds trials train (paired comparisons; with racing, the seeds that can be earned); test seeds
        never overlap them."""
        return [self.seed + i for i in range(max(self.seeds_per_trial, self.race_seeds))]

    @property
    def searched_params(self) -> list[str]:
        return [p.get("optuna_name", p["name"]) for p in self.search_space]

    def objective_description(self) -> str:
        """The one sentence that says what a trial's value is."""
        what = {
            "final": "final evaluation return",
            "best": "best evaluation return",
            "auc": "mean evaluation return over the whole run (auc)",
        }.get(self.objective, f"mean of the last {self.objective[5:]} evaluation returns ({self.objective})")
        return f"maximise the {what}, {self.aggregate} over the {self.seeds_per_trial} tuning seed(s)"


def read_study_info(study: optuna.Study) -> StudyInfo:
    return StudyInfo.from_attrs(study.user_attrs.get(STUDY_INFO) or {})


def write_study_info(study: optuna.Study, info: StudyInfo) -> None:
    study.set_user_attr(STUDY_INFO, info.to_attrs())


def read_confirmation(study: optuna.Study) -> list[CandidateStats]:
    """The ranked confirmation statistics stored on a study, best first, or []."""
    return [CandidateStats.from_dict(c) for c in study.user_attrs.get(CONFIRMATION) or []]


def write_confirmation(study: optuna.Study, ranked: Sequence[CandidateStats]) -> None:
    study.set_user_attr(CONFIRMATION, [c.as_dict() for c in ranked])


def read_held_out(study: optuna.Study) -> list[CandidateStats]:
    """The held-out check's statistics stored on a study (the confirmed winner and the default), or []."""
    return [CandidateStats.from_dict(c) for c in study.user_attrs.get(HELD_OUT) or []]


def write_held_out(study: optuna.Study, ranked: Sequence[CandidateStats]) -> None:
    study.set_user_attr(HELD_OUT, [c.as_dict() for c in ranked])


@dataclass(frozen=True)
class PlannedCandidate:
    """A configuration a confirmation trains: its label, the trial it comes from (None for the study default
    when no trial ran it), that trial's search score, whether it is the baseline, and its configuration key."""

    label: str
    source_trial: int | None = None
    search_score: float | None = None
    is_baseline: bool = False
    key: str = ""


@dataclass(frozen=True)
class ConfirmPlan:
    """What a confirmation study runs: the budget and statistic of every unit, the test seeds, the candidates.
    An empty plan (``total_steps`` None) is a confirmation not planned yet."""

    total_steps: int | None = None
    objective: str = "final"
    test_seeds: tuple[int, ...] = ()
    candidates: tuple[PlannedCandidate, ...] = ()

    @property
    def baseline(self) -> PlannedCandidate | None:
        return next((c for c in self.candidates if c.is_baseline), None)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> ConfirmPlan:
        names = {f.name for f in dataclasses.fields(PlannedCandidate)}
        return cls(
            total_steps=attrs.get("total_steps"),
            objective=attrs.get("objective", "final"),  # planned before the objective was recorded: final
            test_seeds=tuple(int(s) for s in attrs.get("test_seeds", ())),
            candidates=tuple(
                PlannedCandidate(**{k: v for k, v in c.items() if k in names}) for c in attrs.get("candidates", ())
            ),
        )

    def to_attrs(self) -> dict[str, Any]:
        return {
            "total_steps": self.total_steps,
            "objective": self.objective,
            "test_seeds": list(self.test_seeds),
            "candidates": [dataclasses.asdict(c) for c in self.candidates],
        }


def read_confirm_plan(confirm_study: optuna.Study) -> ConfirmPlan:
    return ConfirmPlan.from_attrs(confirm_study.user_attrs.get(CONFIRM_PLAN) or {})


def write_confirm_plan(confirm_study: optuna.Study, plan: ConfirmPlan) -> None:
    confirm_study.set_user_attr(CONFIRM_PLAN, plan.to_attrs())


def read_fingerprint(study: optuna.Study) -> str | None:
    return study.user_attrs.get(FINGERPRINT)


def write_fingerprint(study: optuna.Study, fingerprint: str) -> None:
    study.set_user_attr(FINGERPRINT, fingerprint)


# ---------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class TrialRecord:
    """A finished or running trial as vmpo-tune wrote it, for display (missing or unreadable attributes are None /
    empty)."""

    number: int
    state: TrialState
    value: float | None
    params: dict[str, Any]
    config: RunConfig | None
    seeds: list[int]
    seed_returns: list[float]
    seed_best_returns: list[float]
    wall_time_s: float | None
    env_steps_trained: int | None
    env_steps_per_s: float | None
    provenance: dict | None
    resumed_from_env_steps: int | None
    resume_exact: bool | None
    fail_reason: str | None
    enqueued: str | None
    candidate: str | None
    source_trial: int | None
    retry_of: list[int]

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
        return cls(
            number=trial.number,
            state=trial.state,
            value=trial.value,
            params=dict(trial.params),
            config=_readable_config(trial),
            seeds=list(attrs.get(SEEDS) or []),
            seed_returns=list(attrs.get(SEED_RETURNS) or []),
            seed_best_returns=list(attrs.get(SEED_BEST_RETURNS) or []),
            wall_time_s=attrs.get(WALL_TIME),
            env_steps_trained=attrs.get(ENV_STEPS_TRAINED),
            env_steps_per_s=attrs.get(ENV_STEPS_PER_S),
            provenance=attrs.get(PROVENANCE),
            resumed_from_env_steps=attrs.get(RESUMED_FROM),
            resume_exact=attrs.get(RESUME_EXACT),
            fail_reason=attrs.get(FAIL_REASON),
            enqueued=attrs.get(ENQUEUED),
            candidate=attrs.get(CANDIDATE),
            source_trial=attrs.get(SOURCE_TRIAL),
            retry_of=list(trial.system_attrs.get(RETRY_HISTORY, [])),
        )

    @property
    def is_default(self) -> bool:
        return self.enqueued == DEFAULT_ENQUEUED


@dataclass(frozen=True)
class RunStart:
    """What an attempt at a trial runs, written once when it starts: the complete configuration, the seeds,
    where it runs (provenance) and where it starts (0, or the env steps it resumed from and whether exactly)."""

    config: RunConfig
    seeds: Sequence[int]
    provenance: Mapping[str, Any]
    resumed_from: int = 0
    resume_exact: bool | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How an attempt ended, written once when it ends however it ends: its wall time, the CPU time of its own work
    (building and training the seeds, in the worker's training thread; not its storage calls, pruner or artifact
    uploads), the env steps it trained; the seeds' final and best returns when training finished (None when it did
    not)."""

    wall_time_s: float
    env_steps_trained: int
    compute_cpu_s: float | None = None
    seed_returns: Sequence[float] | None = None
    seed_best_returns: Sequence[float] | None = None


def write_run(trial: optuna.Trial, start: RunStart) -> None:
    attrs: dict[str, Any] = {
        CONFIG: start.config.to_dict(),
        SEEDS: [int(s) for s in start.seeds],
        PROVENANCE: dict(start.provenance),
        RESUMED_FROM: int(start.resumed_from),
        RESUME_EXACT: bool(start.resume_exact) if start.resumed_from else None,
    }
    if trial.user_attrs.get(FAIL_REASON) is not None:  # inherited from the attempt this one retries
        attrs[FAIL_REASON] = None
    _set_user_attrs(trial, attrs)


def write_outcome(trial: optuna.Trial, outcome: RunOutcome) -> None:
    wall, trained = outcome.wall_time_s, int(outcome.env_steps_trained)
    attrs: dict[str, Any] = {
        WALL_TIME: round(wall, 2),
        COMPUTE_CPU: None if outcome.compute_cpu_s is None else round(outcome.compute_cpu_s, 3),
        ENV_STEPS_TRAINED: trained,
        ENV_STEPS_PER_S: round(trained / wall, 1) if wall > 0 else None,
    }
    if outcome.seed_returns is not None:
        attrs[SEED_RETURNS] = [round(float(v), 3) for v in outcome.seed_returns]
        attrs[SEED_BEST_RETURNS] = [round(float(v), 3) for v in outcome.seed_best_returns or ()]
    _set_user_attrs(trial, attrs)


def _set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """Optuna stores user attributes one at a time; this is the one place a record's attributes are written."""
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def write_seed_values(trial: optuna.Trial, step: int, values: Sequence[float]) -> None:
    """Each seed's evaluation return at ``step`` (the trial reports their mean), for seed-aware pruning."""
    curves = dict(trial.user_attrs.get(SEED_CURVES) or {})
    curves[str(int(step))] = [float(v) for v in values]
    trial.set_user_attr(SEED_CURVES, curves)


def read_seed_values(trial: FrozenTrial, step: int) -> list[float]:
    return list((trial.user_attrs.get(SEED_CURVES) or {}).get(str(int(step)), []))


def write_fail_reason(trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr(FAIL_REASON, reason)


def read_seeds(trial: optuna.Trial | FrozenTrial) -> list[int]:
    return [int(s) for s in trial.user_attrs.get(SEEDS) or []]


def read_config(trial: optuna.Trial | FrozenTrial) -> RunConfig | None:
    """The complete configuration a trial ran (None for a trial made by another tool)."""
    stored = trial.user_attrs.get(CONFIG)
    return _run_config(stored, f"trial {trial.number}'s configuration") if stored else None


def _readable_config(trial: FrozenTrial) -> RunConfig | None:
    """A trial's configuration for display (the report, the tables): None when there is none, or when it is not one
    this version can read (a study written by another tool); commands that act on it use :func:`read_config`,
    which says why it cannot be read."""
    try:
        return read_config(trial)
    except UserError:
        return None


def _run_config(stored: Any, what: str) -> RunConfig:
    try:
        return RunConfig.from_dict(stored)
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"{what} is not one this version of vmpo-tune can read ({exc}); open the study with the vmpo-tune "
            "release that wrote it (its provenance names it)"
        ) from None


def read_resume(trial: optuna.Trial | FrozenTrial) -> dict:
    """The resume record of an unfinished trial: ``{seed: {"env_steps": n, "artifact": id}}``."""
    return dict(trial.user_attrs.get(RESUME) or {})


def write_resume(trial: optuna.Trial, record: Mapping[str, Any]) -> None:
    trial.set_user_attr(RESUME, dict(record))


def seed_artifact_name(seed: int, filename: str) -> str:
    """The name a seed's file (checkpoint, curve, video) has among a trial's artifacts."""
    return f"seed{int(seed)}_{filename}"


def video_artifact_name(trial: int | None, seed: int) -> str:
    """The name of a study artifact that films a trial's (or the default configuration's) episodes."""
    return f"{'default' if trial is None else f'trial{int(trial)}'}_{seed_artifact_name(seed, 'episodes.mp4')}"


def checkpoint_artifacts(trial: FrozenTrial, storage: optuna.storages.BaseStorage) -> dict[int, str]:
    """Artifact ids of a finished trial's best checkpoints, by seed (empty if it stored none)."""
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=storage)
    by_name = {meta.filename: meta.artifact_id for meta in metas}
    names = {seed: seed_artifact_name(seed, BEST_CHECKPOINT) for seed in read_seeds(trial)}
    return {seed: by_name[name] for seed, name in names.items() if name in by_name}


def default_trial_attrs() -> dict[str, Any]:
    """User attributes of the enqueued default-configuration trial."""
    return {ENQUEUED: DEFAULT_ENQUEUED}


def enqueued_attrs(path: str) -> dict[str, Any]:
    """User attributes of a trial queued from a file (``search --enqueue FILE``)."""
    return {ENQUEUED: f"{ENQUEUED_FROM}{path}"}


def enqueued_file(attrs: dict[str, Any]) -> str | None:
    """The file a trial was queued from (as given to ``--enqueue``), or None."""
    value = str(attrs.get(ENQUEUED) or "")
    return value.removeprefix(ENQUEUED_FROM) if value.startswith(ENQUEUED_FROM) else None


def unit_attrs(candidate: str, source_trial: int | None, seed: int, config: RunConfig) -> dict[str, Any]:
    """User attributes of a confirmation unit: one candidate configuration trained on one test seed."""
    return {CANDIDATE: candidate, SOURCE_TRIAL: source_trial, SEEDS: [int(seed)], CONFIG: config.to_dict()}


@dataclass(frozen=True)
class TrialCounts:
    """Trials by state, with the budget's view: a FAIL that a later trial retries is ``retried``, not ``fail``.

    ``finished`` (complete + pruned + failed) and ``used`` (finished + running + waiting) are what
    a study's ``--trials N`` budget counts.
    """

    complete: int = 0
    pruned: int = 0
    fail: int = 0
    retried: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.fail

    @property
    def used(self) -> int:
        return self.finished + self.running + self.waiting

    @property
    def total(self) -> int:
        return self.used + self.retried

    def summary(self) -> str:
        text = f"{self.finished} finished: {self.complete} complete, {self.pruned} pruned, {self.fail} failed"
        extra = [f"{getattr(self, k)} {k}" for k in ("retried", "running", "waiting") if getattr(self, k)]
        return text + (f" ({', '.join(extra)})" if extra else "")


def budget_counts(trials: Sequence[FrozenTrial]) -> TrialCounts:
    retried = retried_numbers(trials)
    counts = {s: 0 for s in ("complete", "pruned", "fail", "retried", "running", "waiting")}
    for t in trials:
        if t.state == TrialState.FAIL and t.number in retried:
            counts["retried"] += 1
        elif t.state.name.lower() in counts:
            counts[t.state.name.lower()] += 1
    return TrialCounts(**counts)


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed trials that a later trial retries."""
    return {n for t in trials for n in t.system_attrs.get(RETRY_HISTORY, [])}


def cpu_hours(trials: Sequence[FrozenTrial]) -> float:
    """Core-hours spent training (each worker trains on one core)."""
    return sum(float(t.user_attrs.get(WALL_TIME) or 0.0) for t in trials) / 3600.0


def env_steps(trials: Sequence[FrozenTrial]) -> int:
    return sum(int(t.user_attrs.get(ENV_STEPS_TRAINED) or 0) for t in trials)
