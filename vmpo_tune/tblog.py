"""TensorBoard scalars of a training run: one event folder per run, the metric names of :mod:`metrics`.

``--tensorboard DIR`` on search, confirm and train writes, at every evaluation, the
evaluation return and every training metric averaged since the previous evaluation
(``eval/return_mean``, ``loss/policy``, ``kl/mean``, ``vmpo/eta``, ``policy/std``, ...),
with the env steps as the step. ``tensorboard --logdir DIR`` shows them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

from .errors import UserError

_SKIP = ("env_steps", "actual_steps")


def check_available(folder: str | Path) -> None:
    """A one-line error when the tensorboard package is missing or ``folder`` cannot be a writable folder
    (call it before anything runs: otherwise every trial would fail on its first evaluation)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'vmpo-tune[tensorboard]'") from None
    path = Path(folder)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"--tensorboard {folder}: {blocker} is a file, not a folder; pick another --tensorboard")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--tensorboard {folder}: {existing} is not writable; pick another --tensorboard")


class ScalarLog:
    """Writes the rows of a trainer's history (one per evaluation) as scalars."""

    def __init__(self, folder: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def write(self, row: Mapping[str, Any]) -> None:
        step = int(row["env_steps"])
        for key, value in row.items():
            if key in _SKIP or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
