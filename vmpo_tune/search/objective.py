"""The Optuna objective: train a trial's configuration on its seeds, report, prune, record.

With ``seeds_per_trial = k`` the k trainers advance in lockstep from one evaluation to
the next, and the trial reports the mean over seeds at each evaluation mark
(``step = env steps``), so pruning acts during training. A diverged run raises
:class:`~vmpo_tune.errors.TrialFailed` (the trial ends FAIL with the reason), never
``TrialPruned``.

Checkpoints: at every evaluation each seed's ``last.pt`` is written to the artifact
store under a fixed id recorded in the ``resume_checkpoints`` user attribute; a retried
trial (after a killed worker or an interrupt) inherits that attribute and resumes each
seed from its checkpoint instead of starting over. A finished trial removes its resume
checkpoints and uploads its best checkpoint and learning curve as Optuna artifacts.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from .. import provenance
from ..agent import NonFiniteError
from ..errors import TrialFailed
from ..stats import aggregate
from ..trainer import CHECKPOINT_BEST, CHECKPOINT_LAST, EVAL_CSV, VMPOTrainer
from .space import params_to_configs, sample_params
from .spec import StudySpec

log = logging.getLogger(__name__)

RESUME_ATTR = "resume_checkpoints"
RESUME_FILES = (CHECKPOINT_LAST, CHECKPOINT_BEST, EVAL_CSV)


def study_seeds(spec: StudySpec) -> list[int]:
    """Every trial trains the same seeds (paired comparisons); confirm on fresh ones with ``train``."""
    return [spec.seed + i for i in range(spec.seeds_per_trial)]


class Objective:
    def __init__(
        self,
        spec: StudySpec,
        out_dir: Path,
        device: str = "cpu",
        artifact_store: FileSystemArtifactStore | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        interrupt_check: Callable[[], None] | None = None,
    ) -> None:
        self.spec, self.out_dir, self.device = spec, Path(out_dir), device
        self.artifact_store, self.on_progress = artifact_store, on_progress
        self.interrupt_check = interrupt_check

    def __call__(self, trial: optuna.Trial) -> float:
        spec = self.spec
        params = sample_params(trial, spec)
        agent_cfg, train_cfg = params_to_configs(spec, params, device=self.device)
        seeds = list(trial.user_attrs.get("seeds") or study_seeds(spec))
        if trial.user_attrs.get("fail_reason") is not None:  # inherited from the attempt this one retries
            trial.set_user_attr("fail_reason", None)
        trial.set_user_attr("seeds", seeds)
        trial.set_user_attr("config", {"agent": agent_cfg.to_dict(), "train": train_cfg.to_dict(),
                                       "total_steps": spec.total_steps})  # fmt: skip
        trial.set_user_attr("provenance", provenance.record())
        trainers = [VMPOTrainer.from_configs(agent_cfg, dataclasses.replace(train_cfg, seed=s)) for s in seeds]
        dirs = [self.out_dir / "trials" / f"{trial.number:05d}" / f"seed_{s}" for s in seeds]
        history = self._restore(trial, trainers, dirs)
        resumed = trainers[0].env_steps
        trial.set_user_attr("resumed_from_env_steps", resumed)
        start = time.perf_counter()
        try:
            finals = self._train(trial, trainers, dirs, history)
        finally:
            trained = sum(t.env_steps for t in trainers) - resumed * len(trainers)
            wall = time.perf_counter() - start
            trial.set_user_attr("wall_time_s", round(wall, 2))
            trial.set_user_attr("env_steps_trained", int(trained))
            trial.set_user_attr("env_steps_per_s", round(trained / wall, 1) if wall > 0 else None)
        value = aggregate(finals, spec.aggregate)
        trial.set_user_attr("seed_returns", [round(v, 3) for v in finals])
        self._finish(trial, trainers, dirs)
        return value

    # ------------------------------------------------------------------ training

    def _train(self, trial: optuna.Trial, trainers: list[VMPOTrainer], dirs: list[Path],
               history: list[list[float]]) -> list[float]:  # fmt: skip
        """Advance the seeds in lockstep; ``history`` holds each seed's evaluations so far (resumed ones too)."""
        spec = self.spec
        report, check = self.on_progress, self.interrupt_check

        def progress(steps: int, _metrics, first: bool) -> None:
            if check is not None:
                check()  # between two updates: a safe point to stop at
            if first and report is not None:
                report(trial.number, steps)

        # a restored trainer already holds its checkpoint and continues from its env steps
        runs = [t.iterate(spec.total_steps, d, on_update=functools.partial(progress, first=i == 0))
                for i, (t, d) in enumerate(zip(trainers, dirs))]  # fmt: skip
        try:
            for points in zip(*runs):
                for h, p in zip(history, points):
                    h.append(p.result.mean)
                mark = points[0].env_steps
                value = float(np.mean([p.result.mean for p in points]))
                trial.report(value, mark)
                self._save_resume_checkpoints(trial, trainers, dirs, history)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at {mark} env steps with evaluation return {value:.1f}")
        except (NonFiniteError, FloatingPointError) as exc:
            raise TrialFailed(f"diverged: {exc}") from exc
        finally:
            for run in runs:
                run.close()
        pick = (lambda h: h[-1]) if spec.objective == "final" else max
        return [float(pick(h)) for h in history]

    # ------------------------------------------------------------------ checkpoints
    # A resume record, per seed: {"env_steps": n, "history": [evaluation means], "files": {name: artifact id}}
    # holding last.pt, best.pt and evaluations.csv as they were at that evaluation.

    def _save_resume_checkpoints(self, trial: optuna.Trial, trainers, dirs, history) -> None:
        """Write each seed's files under new ids, record them, then drop the previous ones.

        Ids carry the env steps, so the recorded set is always consistent, even if the process
        dies between two writes.
        """
        if self.artifact_store is None:
            return
        previous = trial.user_attrs.get(RESUME_ATTR) or {}
        record = {}
        for trainer, d, h in zip(trainers, dirs, history):
            seed, files = trainer.config.seed, {}
            prefix = f"resume-{trial.study.study_name}-{trial.number}-seed{seed}-{trainer.env_steps}"
            for name in RESUME_FILES:
                if (d / name).exists():
                    files[name] = f"{prefix}-{name}"
                    with open(d / name, "rb") as f:
                        self.artifact_store.write(files[name], f)
            record[str(seed)] = {"env_steps": trainer.env_steps, "history": list(h), "files": files}
        trial.set_user_attr(RESUME_ATTR, record)
        current = {i for r in record.values() for i in r["files"].values()}
        stale = {k: {"files": {n: i for n, i in v["files"].items() if i not in current}} for k, v in previous.items()}
        cleanup_resume_checkpoints(self.artifact_store, stale)

    def _restore(self, trial: optuna.Trial, trainers, dirs) -> list[list[float]]:
        """Bring back the files a retried trial inherited; returns each seed's evaluation history.

        The trainers then resume from ``last.pt``; a fresh trial starts from clean folders.
        """
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)  # never read another attempt's files
        entries = trial.user_attrs.get(RESUME_ATTR) or {}
        if not entries or self.artifact_store is None:
            return [[] for _ in trainers]
        try:
            histories = []
            for trainer, d in zip(trainers, dirs):
                entry = entries[str(trainer.config.seed)]
                d.mkdir(parents=True)
                for name, artifact_id in entry["files"].items():
                    with self.artifact_store.open_reader(artifact_id) as src, open(d / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                trainer.load_checkpoint(d / CHECKPOINT_LAST)
                histories.append(list(entry["history"]))
        except Exception as exc:  # e.g. an artifact folder that is not shared between machines
            log.warning("trial %d cannot resume (%s); it starts over. Share --artifact-dir between machines to "
                        "resume retried trials", trial.number, exc)  # fmt: skip
            for trainer, d in zip(trainers, dirs):
                shutil.rmtree(d, ignore_errors=True)
                trainer.reset()
            return [[] for _ in trainers]
        log.info("trial %d resumes from its checkpoint at %d env steps", trial.number, trainers[0].env_steps)
        return histories

    def _finish(self, trial: optuna.Trial, trainers, dirs) -> None:
        """Upload the best checkpoint and curve of each seed; drop resume checkpoints."""
        if self.artifact_store is None:
            return
        for trainer, d in zip(trainers, dirs):
            for name, mime in ((CHECKPOINT_BEST, "application/octet-stream"), (EVAL_CSV, "text/csv")):
                path = d / name
                if path.exists():
                    named = d / f"seed{trainer.config.seed}_{name}"
                    shutil.copyfile(path, named)
                    upload_artifact(artifact_store=self.artifact_store, file_path=str(named),
                                    study_or_trial=trial, mimetype=mime)  # fmt: skip
                    named.unlink()
            for name in (CHECKPOINT_LAST, CHECKPOINT_BEST):  # they live in the artifact store now
                (d / name).unlink(missing_ok=True)
        cleanup_resume_checkpoints(self.artifact_store, trial.user_attrs.get(RESUME_ATTR))
        trial.set_user_attr(RESUME_ATTR, {})


def cleanup_resume_checkpoints(store: FileSystemArtifactStore | None, record) -> None:
    """Remove every file of a resume record from the artifact store (missing ones are fine)."""
    if store is None or not record:
        return
    for entry in record.values():
        for artifact_id in entry.get("files", {}).values():
            try:
                store.remove(artifact_id)
            except Exception:
                log.debug("resume file %s was already removed", artifact_id)
