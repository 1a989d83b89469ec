"""What the CLIs share: flags, logging set-up, one-line errors and exit codes."""

from __future__ import annotations

import argparse
import enum
import logging
import sys
from typing import Callable

from . import validate
from .errors import UserError
from .redaction import RedactingFormatter, redact

LOG_FORMAT, DATE_FORMAT = "%(asctime)s %(message)s", "%H:%M:%S"


class ExitCode(enum.IntEnum):
    """How every command (and every worker process) exits; README "Exit codes" documents them."""

    OK = 0
    INTERNAL = 1
    """An unexpected error (rerun with --debug for the traceback), or a worker process that died."""
    USER_ERROR = 2
    """Bad input: one line naming the problem and the fix; nothing stored changed."""
    STORAGE_LOST = 3
    """The storage stayed unreachable for --patience seconds; rerun the same command when it is back."""
    SIGINT = 130
    SIGTERM = 143

    @classmethod
    def of_signal(cls, name: str | None) -> ExitCode:
        return {"SIGINT": cls.SIGINT, "SIGTERM": cls.SIGTERM}.get(name or "", cls.OK)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (no usage block): the problem and where help is."""

    def error(self, message: str):
        self.exit(ExitCode.USER_ERROR, f"error: {redact(message)} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: a positive integer."""
    try:
        return validate.positive_int("the value", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None


START_UP_NOTES = ("OpenGL", "absl")
"""Loggers whose INFO lines are a library's start-up notes, not the user's business: PyOpenGL's "No OpenGL_accelerate
module loaded", logged whenever ``MUJOCO_GL=egl`` or ``osmesa`` (usual on headless machines) makes MuJoCo import it,
and dm_control's "MuJoCo library version is: ..." through absl. Their warnings still show; all of it with
``--debug``."""


def quiet_start_up_notes(debug: bool = False) -> None:
    for name in START_UP_NOTES:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def configure_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT, DATE_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("optuna").setLevel(logging.INFO if args.debug else logging.WARNING)
    quiet_start_up_notes(args.debug)


def run_cli(fn: Callable[[], int], debug: bool) -> int:
    """Run a command: a UserError is one line and exit 2; anything unexpected is exit 1."""
    try:
        return fn()
    except UserError as exc:
        if debug:
            raise
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return ExitCode(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.SIGINT
    except Exception as exc:
        if debug:
            raise
        print(
            f"internal error: {type(exc).__name__}: {redact(str(exc))} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL
