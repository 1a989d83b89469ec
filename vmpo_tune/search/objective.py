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
    ) -> None:
        self.spec, self.out_dir, self.device = spec, Path(out_dir), device
        self.artifact_store, self.on_progress = artifact_store, on_progress

    def __call__(self, trial: optuna.Trial) -> float:
        spec = self.spec
        params = sample_params(trial, spec)
        agent_cfg, train_cfg = params_to_configs(spec, params, device=self.device)
        seeds = list(trial.user_attrs.get("seeds") or study_seeds(spec))
        trial.set_user_attr("seeds", seeds)
        trial.set_user_attr("config", {"agent": agent_cfg.to_dict(), "train": train_cfg.to_dict(),
                                       "total_steps": spec.total_steps})  # fmt: skip
        trial.set_user_attr("provenance", provenance.record())
        trainers = [VMPOTrainer.from_configs(agent_cfg, dataclasses.replace(train_cfg, seed=s)) for s in seeds]
        dirs = [self.out_dir / "trials" / f"{trial.number:05d}" / f"seed_{s}" for s in seeds]
        resumed = self._restore(trial, trainers, dirs)
        start = time.perf_counter()
        try:
            finals = self._train(trial, trainers, dirs, resumed)
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

    def _train(self, trial: optuna.Trial, trainers: list[VMPOTrainer], dirs: list[Path], resumed: int) -> list[float]:
        spec = self.spec
        report = self.on_progress

        def progress(steps: int, _metrics) -> None:
            if report is not None:
                report(trial.number, steps)

        runs = [t.iterate(spec.total_steps, d, resume=resumed > 0, on_update=progress if i == 0 else None)
                for i, (t, d) in enumerate(zip(trainers, dirs))]  # fmt: skip
        history: list[list[float]] = [[] for _ in trainers]
        try:
            for points in zip(*runs):
                for h, p in zip(history, points):
                    h.append(p.result.mean)
                mark = points[0].env_steps
                value = float(np.mean([p.result.mean for p in points]))
                trial.report(value, mark)
                self._save_resume_checkpoints(trial, trainers, dirs)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at {mark} env steps with evaluation return {value:.1f}")
        except (NonFiniteError, FloatingPointError) as exc:
            raise TrialFailed(f"diverged: {exc}") from exc
        finally:
            for run in runs:
                run.close()
        if any(not h for h in history):  # resumed after the last evaluation: use what the checkpoint knew
            raise TrialFailed("nothing left to train after resuming; the checkpoint already reached total_steps")
        pick = (lambda h: h[-1]) if spec.objective == "final" else max
        return [float(pick(h)) for h in history]

    # ------------------------------------------------------------------ checkpoints

    def _save_resume_checkpoints(self, trial: optuna.Trial, trainers, dirs) -> None:
        """Write each seed's checkpoint under a new id, record them, then drop the previous ones.

        Ids carry the env steps, so the recorded set is always consistent, even if the process
        dies between two writes.
        """
        if self.artifact_store is None:
            return
        previous = dict(trial.user_attrs.get(RESUME_ATTR) or {})
        record = {}
        for trainer, d in zip(trainers, dirs):
            seed = trainer.config.seed
            artifact_id = f"resume-{trial.study.study_name}-{trial.number}-seed{seed}-{trainer.env_steps}"
            with open(d / CHECKPOINT_LAST, "rb") as f:
                self.artifact_store.write(artifact_id, f)
            record[str(seed)] = {"artifact_id": artifact_id, "env_steps": trainer.env_steps}
        trial.set_user_attr(RESUME_ATTR, record)
        current = {r["artifact_id"] for r in record.values()}
        cleanup_resume_checkpoints(self.artifact_store, {k: v for k, v in previous.items()
                                                         if v["artifact_id"] not in current})  # fmt: skip

    def _restore(self, trial: optuna.Trial, trainers, dirs) -> int:
        """Load the checkpoints a retried trial inherited; returns the env steps it resumes from."""
        entries = trial.user_attrs.get(RESUME_ATTR) or {}
        if not entries or self.artifact_store is None:
            for d in dirs:
                if d.exists():
                    shutil.rmtree(d)  # a fresh trial never reads another attempt's files
            return 0
        steps = set()
        for trainer, d in zip(trainers, dirs):
            entry = entries.get(str(trainer.config.seed))
            try:
                if entry is None:
                    raise FileNotFoundError(f"no checkpoint recorded for seed {trainer.config.seed}")
                d.mkdir(parents=True, exist_ok=True)
                with self.artifact_store.open_reader(entry["artifact_id"]) as src, open(d / CHECKPOINT_LAST,
                                                                                        "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except Exception as exc:  # e.g. an artifact folder that is not shared between machines
                log.warning("trial %d cannot resume (%s); it starts over. Share --artifact-dir between "
                            "machines to resume retried trials", trial.number, exc)  # fmt: skip
                for folder in dirs:
                    shutil.rmtree(folder, ignore_errors=True)
                return 0
            steps.add(int(entry["env_steps"]))
        resumed = min(steps)
        trial.set_user_attr("resumed_from_env_steps", resumed)
        log.info("trial %d resumes from its checkpoint at %d env steps", trial.number, resumed)
        return resumed

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
    if store is None or not record:
        return
    for entry in record.values():
        try:
            store.remove(entry["artifact_id"])
        except Exception:
            log.debug("resume checkpoint %s was already removed", entry["artifact_id"])
