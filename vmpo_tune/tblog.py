"""TensorBoard scalars of a training run: one event folder per run, the metric names of :mod:`metrics`.

``--tensorboard DIR`` on search, confirm and train writes, at every evaluation, the
evaluation return and every training metric averaged since the previous evaluation
(``eval/return_mean``, ``loss/policy``, ``kl/mean``, ``vmpo/eta``, ``policy/std``, ...),
with the env steps as the step. ``tensorboard --logdir DIR`` shows them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from .errors import UserError

_SKIP = ("env_steps", "actual_steps")


def check_available() -> None:
    """A one-line error when the tensorboard package is missing (call it before anything runs)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'vmpo-tune[tensorboard]'") from None


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
