"""Errors a user can fix: the CLI prints them as one line (no traceback unless --debug)."""


class UserError(Exception):
    """A problem with input or environment, with a message naming the problem and the fix."""


class TrialFailed(Exception):
    """A trial that cannot produce a value (a diverged run); it ends as FAIL with this reason."""
