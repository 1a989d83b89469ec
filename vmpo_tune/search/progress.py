"""The live view of a search: one status line, log lines above it, an estimate of the time left.

On a terminal the status line is redrawn in place at the bottom, and every log line
(the parent's, and the workers', which arrive through a queue) first clears it, is
printed, then the status line is drawn again, so the two never run together. Redirected
to a file or a pipe, the output is plain lines: log lines as they come, and the status
line whenever the counts change or every ``every`` seconds.

The estimate of the time left comes from the study itself: the mean env steps a
finished trial took (so the pruning rate is in it), the env steps still to go (trials
not started, and the rest of the running ones), and the rate at which this run's
workers have been getting through env steps.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

import optuna

from .. import records

log = logging.getLogger(__name__)


def _k(steps: int) -> str:
    return f"{steps / 1000:.0f}k" if steps >= 1000 else str(steps)


def duration(seconds: float) -> str:
    """``1:02:03`` (or ``2 d 1:02:03``)."""
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600}:{rest // 60 % 60:02d}:{rest % 60:02d}"
    return f"{days} d {text}" if days else text


def _trained(trial) -> float:
    """Env steps a trial trained, per seed (the status line counts a trial's steps on its first seed)."""
    seeds = len(trial.user_attrs.get(records.SEEDS) or []) or 1
    return (trial.user_attrs.get(records.ENV_STEPS_TRAINED) or 0) / seeds


class ProgressDisplay:
    """The status line of a search (or a confirmation) and the place every log line goes through."""

    def __init__(
        self,
        study: optuna.Study,
        n_trials: int,
        steps_per_trial: int,
        stream: TextIO | None = None,
        every: float = 30.0,
        label: str = "finished",
        show_best: bool = True,
    ) -> None:
        self.study, self.n_trials, self.steps_per_trial = study, n_trials, steps_per_trial
        self.stream = stream or sys.stderr
        self.every, self.label, self.show_best = every, label, show_best
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()
        self._last_poll = self._last_print = 0.0
        self._shown = ""  # the status line on screen (tty)
        self._last_counts = ""
        self._line = ""
        self._printed = ""
        self._best = ""
        self._eta = ""
        self.start = time.monotonic()
        self._start_finished: int | None = None
        self._start_steps: int | None = None
        self._resumed_at: dict[int, int] = {}

    # ------------------------------------------------------------------ state

    def _poll(self, running: list[tuple[int, int]]) -> None:
        trials = self.study.get_trials(deepcopy=False)
        counts = records.budget_counts(trials)
        self._counts = counts
        complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
        if complete:
            best = max(complete, key=lambda t: t.value)
            self._best = f"best {best.value:.1f} (trial {best.number})"
        done_steps = sum(_trained(t) for t in trials if t.state.is_finished())
        if self._start_finished is None:
            self._start_finished, self._start_steps = counts.finished, done_steps
        for t in trials:  # where each running trial started from (a resumed one did not train its first steps now)
            if t.state.name == "RUNNING" and t.number not in self._resumed_at:
                self._resumed_at[t.number] = int(t.user_attrs.get(records.RESUMED_FROM) or 0)
        self._eta = self._estimate(trials, counts, running, done_steps)
        self._last_poll = time.monotonic()

    def _estimate(self, trials, counts, running, done_steps: int) -> str:
        finished = [t for t in trials if t.state.is_finished() and _trained(t)]
        per_trial = float(self.steps_per_trial)
        if finished:
            per_trial = sum(_trained(t) + (t.user_attrs.get(records.RESUMED_FROM) or 0) for t in finished) / len(
                finished
            )
        active = [s for n, s in running if n >= 0]
        left = max(self.n_trials - counts.finished - len(active), 0) * per_trial
        left += sum(max(per_trial - s, 0) for s in active)
        elapsed = time.monotonic() - self.start
        # steps trained by this run: finished trials' trained steps, and the running ones' progress since
        # they (re)started; a resumed trial's earlier steps are not this run's work
        made = done_steps - (self._start_steps or 0)
        made += sum(max(s - self._resumed_at.get(n, 0), 0) for n, s in running if n >= 0)
        if made <= 0 or elapsed < 5:
            return ""
        return f"ETA {duration(left / (made / elapsed))}"

    def line(self, running: list[tuple[int, int]]) -> str:
        c = getattr(self, "_counts", None)
        finished = c.finished if c else 0
        parts = [
            f"{finished}/{self.n_trials} {self.label}"
            + (f" ({c.complete} complete, {c.pruned} pruned, {c.fail} failed)" if c else ""),
        ]
        if self.show_best:
            parts.append(self._best or "best -")
        active = [f"#{n} {_k(s)}/{_k(self.steps_per_trial)}" for n, s in running if n >= 0]
        if active:
            parts.append("running " + ", ".join(active))
        parts.append(duration(time.monotonic() - self.start) + (f", {self._eta}" if self._eta else ""))
        return " | ".join(parts)

    # ------------------------------------------------------------------ output

    def update(self, running: list[tuple[int, int]], force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_poll >= 2.0:
            try:
                self._poll(running)
            except Exception as exc:  # a storage fault: the workers deal with it; keep showing the last counts
                log.debug("progress: cannot read the study (%s)", exc)
                self._last_poll = now
        line = self.line(running)
        counts = line.split(" | ")[0]
        with self._lock:
            self._line = line
            if self.tty:
                self._draw(line)
            elif (
                (force and counts != self._printed)
                or counts != self._last_counts
                or now - self._last_print >= self.every
            ):
                self.stream.write(line + "\n")
                self._printed = counts
                self.stream.flush()
                self._last_print = now
            self._last_counts = counts

    def _draw(self, line: str) -> None:
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()
        self._shown = line

    def emit(self, text: str) -> None:
        """Print a log line; on a terminal, above the status line."""
        with self._lock:
            if self.tty and self._shown:
                self.stream.write("\r\x1b[2K")
            self.stream.write(text + "\n")
            if self.tty and self._shown:
                self.stream.write(self._shown)
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self.tty and self._shown:
                self.stream.write("\n")
                self.stream.flush()
                self._shown = ""


class DisplayHandler(logging.Handler):
    """A logging handler that prints through a :class:`ProgressDisplay`."""

    def __init__(self, display: ProgressDisplay, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.display = display
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.display.emit(self.format(record))
        except Exception:
            self.handleError(record)
