"""Errors a user can fix: the CLI prints them as one line (no traceback unless --debug)."""


class UserError(Exception):
    """A problem with input or environment, with a message naming the problem and the fix."""

    exit_code = 2
    """What the command exits with (``cli_common.ExitCode``: 2, bad input; a lost storage says 3)."""


class TrialFailed(Exception):
    """A trial that cannot produce a value (a diverged run); it ends as FAIL with this reason."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message`` of an exception, cut to ``limit`` characters (for one-line errors)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
