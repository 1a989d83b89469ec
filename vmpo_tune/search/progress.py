"""Live progress of a search: finished / pruned / failed trials, best value, running trials."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import optuna
from optuna.trial import TrialState

from .study import counts


def _k(steps: int) -> str:
    return f"{steps / 1000:.0f}k" if steps >= 1000 else str(steps)


class ProgressDisplay:
    """One status line: rewritten in place on a terminal, printed every ``every`` s otherwise."""

    def __init__(self, study: optuna.Study, n_trials: int, total_steps: int, stream: TextIO = sys.stderr,
                 every: float = 30.0) -> None:  # fmt: skip
        self.study, self.n_trials, self.total_steps = study, n_trials, total_steps
        self.stream, self.every = stream, every
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last_poll = 0.0
        self._last_print = 0.0
        self._last_line = ""
        self._counts: dict[str, int] = {}
        self._best = ""
        self.start = time.monotonic()

    def _poll(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        self._counts = counts(trials)
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if complete:
            best = max(complete, key=lambda t: t.value)
            self._best = f"best {best.value:.1f} (trial {best.number})"
        self._last_poll = time.monotonic()

    def line(self, running: list[tuple[int, int]]) -> str:
        c = self._counts
        elapsed = int(time.monotonic() - self.start)
        parts = [
            f"{c.get('finished', 0)}/{self.n_trials} finished ({c.get('complete', 0)} complete, "
            f"{c.get('pruned', 0)} pruned, {c.get('fail', 0)} failed)",
            self._best or "best -",
        ]
        active = [f"#{n} {_k(s)}/{_k(self.total_steps)}" for n, s in running if n >= 0]
        if active:
            parts.append("running " + ", ".join(active))
        parts.append(f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}")
        return " | ".join(parts)

    def update(self, running: list[tuple[int, int]], force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_poll >= 2.0:
            self._poll()
        line = self.line(running)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        elif force or (line.split(" | ")[0] != self._last_line.split(" | ")[0]) or now - self._last_print >= self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_print = now
        self._last_line = line

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
