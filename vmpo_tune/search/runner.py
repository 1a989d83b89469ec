"""Running one trial: a configuration trained on the trial's seeds, reported, pruned, resumable, recorded.

The search objective and the confirmation stage both run their trials through
:class:`TrialRunner`. With several seeds the trainers advance in lockstep from one
evaluation to the next, and the trial reports the mean over seeds at each evaluation
mark (``step = env steps``), so pruning acts during training. A diverged run raises
:class:`~vmpo_tune.errors.TrialFailed` (the trial ends FAIL with the reason), never
``TrialPruned``.

Resuming: at every evaluation each trainer's resume state (an opaque blob the trainer
makes) goes to the artifact store under an id recorded in the trial's resume record; a
retried trial (after a killed worker or an interrupt) inherits the record and each seed
continues from its blob, exactly where it stopped. A finished trial removes its resume
blobs and uploads each seed's best checkpoint and learning curve as Optuna artifacts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import logging
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from .. import optuna_private, provenance, records
from ..agent import NonFiniteError
from ..config import RunConfig
from ..errors import TrialFailed
from ..stats import aggregate, curve_value
from ..tblog import ScalarLog
from ..trainer import VMPOTrainer

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a trial trains: the complete configuration (with its budget), the seeds and how they are summarised."""

    config: RunConfig
    seeds: tuple[int, ...]
    aggregate: str = "mean"
    objective: str = "final"
    """Per seed, the statistic of the learning curve that makes the value (:func:`~vmpo_tune.stats.curve_value`)."""
    prune: bool = True

    @property
    def total_steps(self) -> int:
        return self.config.total_steps

    def trainers(self) -> list[VMPOTrainer]:
        """A fresh trainer per seed."""
        agent, train = self.config.agent, self.config.train
        return [VMPOTrainer.from_configs(agent, dataclasses.replace(train, seed=s)) for s in self.seeds]


class TrialRunner:
    def __init__(
        self,
        out_dir: Path,
        artifact_store: FileSystemArtifactStore | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        interrupt_check: Callable[[], None] | None = None,
        tensorboard_dir: str | Path | None = None,
    ) -> None:
        self.out_dir, self.artifact_store = Path(out_dir), artifact_store
        self.on_progress, self.interrupt_check = on_progress, interrupt_check
        self.tensorboard_dir = None if tensorboard_dir is None else Path(tensorboard_dir)
        self._compute_cpu = 0.0

    @contextlib.contextmanager
    def _computing(self):
        """Count this thread's CPU time in the block as the trial's own work (building and training the seeds), as
        opposed to storage calls, the pruner and saving artifacts."""
        start = time.thread_time()
        try:
            yield
        finally:
            self._compute_cpu += time.thread_time() - start

    def run(self, trial: optuna.Trial, plan: RunPlan) -> float:
        """Train ``plan`` as ``trial``; returns the trial's value (the seeds' aggregate).

        What the trial stores, in order: the run (configuration, seeds, provenance, where it resumed from) once it
        starts; at each evaluation mark the reported value, each seed's value and the resume record; and, once, when
        the attempt ends however it ends, its outcome (time, env steps trained and, if training finished, returns).
        """
        dirs = [self.out_dir / "trials" / f"{trial.number:05d}" / f"seed_{s}" for s in plan.seeds]
        self._compute_cpu = 0.0
        trainers = self._restore(trial, dirs, plan)
        resumed = trainers[0].env_steps
        exact = all(t.can_resume_exactly for t in trainers) and self._same_cpu_kind(trial) if resumed else None
        records.write_run(trial, records.RunStart(plan.config, plan.seeds, provenance.record(), resumed, exact))
        start, trained = time.perf_counter(), False
        try:
            self._train(trial, trainers, dirs, plan)
            trained = True
            self._finish(trial, trainers, dirs)
        finally:
            records.write_outcome(
                trial,
                records.RunOutcome(
                    wall_time_s=time.perf_counter() - start,
                    compute_cpu_s=self._compute_cpu,
                    env_steps_trained=sum(t.env_steps for t in trainers) - resumed * len(trainers),
                    seed_returns=tuple(t.final_return for t in trainers) if trained else None,
                    seed_best_returns=tuple(t.best_return for t in trainers) if trained else None,
                ),
            )
        return aggregate([curve_value(t.evaluation_returns, plan.objective) for t in trainers], plan.aggregate)

    # ------------------------------------------------------------------ training

    def _train(self, trial: optuna.Trial, trainers: list[VMPOTrainer], dirs: list[Path], plan: RunPlan) -> None:
        """Advance the seeds in lockstep, reporting the mean over seeds at each evaluation mark."""
        report, check = self.on_progress, self.interrupt_check

        def progress(steps: int, _metrics, first: bool) -> None:
            if check is not None:
                check()  # between two updates: a safe point to stop at
            if first and report is not None:
                report(trial.number, steps)

        runs = [
            t.iterate(plan.total_steps, d, on_update=functools.partial(progress, first=i == 0), log_evaluations=False)
            for i, (t, d) in enumerate(zip(trainers, dirs))
        ]
        boards = self._boards(trial, trainers)
        marks = zip(*runs)
        try:
            while True:
                with self._computing():
                    points = next(marks, None)
                if points is None:
                    break
                self._evaluated(trial, trainers, boards, [p.result.mean for p in points], points[0].env_steps, plan)
        except (NonFiniteError, FloatingPointError) as exc:
            raise TrialFailed(f"{records.DIVERGED}{exc}") from exc
        finally:
            for run in runs:
                run.close()
            for board in boards:
                board.close()

    def _evaluated(self, trial, trainers, boards, values: list[float], mark: int, plan: RunPlan) -> None:
        """All seeds reached an evaluation mark: log, report the mean, store the resume state, maybe prune."""
        for board, trainer in zip(boards, trainers):
            board.write(trainer.history[-1])
        value = float(np.mean(values))
        if len(values) > 1:
            records.write_seed_values(trial, mark, values)
        # a retry carries its failed attempt's curve; one that started over reaches those marks again
        earlier = optuna_private.fresh(trial.study, trial).intermediate_values.get(mark)
        if earlier is None:
            trial.report(value, mark)
        elif earlier != value:
            log.info(
                "trial %d: %.1f at %d env steps where its earlier attempt recorded %.1f (the curve keeps that one)",
                trial.number,
                value,
                mark,
                earlier,
            )
        self._save_resume(trial, trainers)
        if plan.prune and mark < plan.total_steps and trial.should_prune():  # a run that reached its budget is done
            raise optuna.TrialPruned(f"pruned at {mark} env steps with evaluation return {value:.1f}")

    def _boards(self, trial: optuna.Trial, trainers: list[VMPOTrainer]) -> list[ScalarLog]:
        if self.tensorboard_dir is None:
            return []
        base = self.tensorboard_dir / _safe_id(trial.study.study_name) / f"trial-{trial.number:05d}"
        return [ScalarLog(base / f"seed-{t.config.seed}") for t in trainers]

    # ------------------------------------------------------------------ resume state

    def _save_resume(self, trial: optuna.Trial, trainers: list[VMPOTrainer]) -> None:
        """Store each seed's resume blob under a new id, record the ids, then drop the previous blobs.

        Ids carry the env steps, so the recorded set is always consistent, even if the process
        dies between two writes.
        """
        if self.artifact_store is None:
            return
        previous = records.read_resume(trial)
        record = {}
        for trainer in trainers:
            seed = trainer.config.seed
            artifact_id = _safe_id(f"resume-{trial.study.study_name}-{trial.number}-seed{seed}-{trainer.env_steps}")
            self.artifact_store.write(artifact_id, io.BytesIO(trainer.state_bytes()))
            record[str(seed)] = {"env_steps": trainer.env_steps, "artifact": artifact_id}
        records.write_resume(trial, record)
        current = {entry["artifact"] for entry in record.values()}
        drop_resume(self.artifact_store, {k: v for k, v in previous.items() if v.get("artifact") not in current})

    def _restore(self, trial: optuna.Trial, dirs: list[Path], plan: RunPlan) -> list[VMPOTrainer]:
        """Trainers that continue from the resume blobs a retried trial inherited (or fresh ones)."""
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)  # never read another attempt's files
        with self._computing():
            trainers = plan.trainers()
        record = records.read_resume(trial)
        if not record or self.artifact_store is None:
            return trainers
        try:
            for trainer in trainers:
                entry = record[str(trainer.config.seed)]
                with self.artifact_store.open_reader(entry["artifact"]) as reader, self._computing():
                    trainer.load_state_bytes(reader.read())
            if len({t.env_steps for t in trainers}) != 1:
                raise ValueError("the seeds' resume states are at different env steps")
        except Exception as exc:  # e.g. an artifact folder that is not shared between machines
            log.warning(
                "trial %d cannot resume (%s); it starts over. Share --artifact-dir between machines to resume "
                "retried trials",
                trial.number,
                exc,
            )
            with self._computing():
                return plan.trainers()
        log.info("trial %d resumes from its checkpoint at %d env steps", trial.number, trainers[0].env_steps)
        return trainers

    @staticmethod
    def _same_cpu_kind(trial: optuna.Trial) -> bool:
        """Whether the attempt a resumed trial continues ran on this kind of CPU (:func:`provenance.cpu_kind`);
        if not, it goes on, but its result is neither machine's bits: it records ``resume_exact: false``."""
        earlier = trial.user_attrs.get(records.PROVENANCE) or {}  # the attempt's, inherited with its resume record
        if provenance.same_kind(earlier.get("cpu"), earlier.get("cpu_kind")) is not False:
            return True  # the same kind, or a record that cannot tell (an attempt before kinds were recorded)
        log.warning(
            "trial %d continues on a CPU of another kind (%s) than the attempt it resumes (%s): its result will not "
            "be reproduced exactly (it records resume_exact: false)",
            trial.number,
            provenance.cpu_kind(),
            earlier.get("cpu_kind") or earlier.get("cpu"),
        )
        return False

    def _finish(self, trial: optuna.Trial, trainers: list[VMPOTrainer], dirs: list[Path]) -> None:
        """Upload the best checkpoint and curve of each seed; drop the resume blobs."""
        if self.artifact_store is None:
            return
        for trainer, d in zip(trainers, dirs):
            for path, mime in trainer.artifacts(d):
                named = d / records.seed_artifact_name(trainer.config.seed, path.name)
                shutil.copyfile(path, named)
                upload_artifact(
                    artifact_store=self.artifact_store, file_path=str(named), study_or_trial=trial, mimetype=mime
                )
                named.unlink()
            trainer.discard_state(d)
        drop_resume(self.artifact_store, records.read_resume(trial))
        records.write_resume(trial, {})


def _safe_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def drop_resume(store: FileSystemArtifactStore | None, record: dict) -> None:
    """Remove every blob of a resume record from the artifact store (missing ones are fine)."""
    if store is None or not record:
        return
    for entry in record.values():
        artifact_id = entry.get("artifact")
        if not artifact_id:
            continue
        try:
            store.remove(artifact_id)
        except Exception:
            log.debug("resume blob %s was already removed", artifact_id)
