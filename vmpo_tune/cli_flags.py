"""Flag groups shared by the commands that open a stored study (``confirm``, ``export``, ``play``, the report):
one definition of ``--study``, ``--storage``, ``--run-dir`` and ``--artifact-dir``, so each means the same
everywhere and reads the same in every ``--help``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .storage_urls import ENV_STORAGE
from .study_names import is_study_path, stored_study_name

STUDY_HELP = "its name, or the study file the search ran with (path/NAME.yaml: study NAME)"


def storage_help(folder: str = "<run-dir>") -> str:
    """``--storage``'s help text, for every command: the URL forms, and the default under ``folder``."""
    return (
        f"the study's storage: an RDB URL, a journal file (journal:///path/study.log or path.log), "
        f"redis://HOST:PORT/DB or grpc://HOST:PORT (default: ${ENV_STORAGE}, else sqlite:///{folder}/study.db)"
    )


RUN_DIR_HELP = "the search's --out folder, for the default storage and the artifacts (default runs/<study>)"
ARTIFACT_DIR_HELP = "the search's artifact folder, where trials' checkpoints are (default <run-dir>/artifacts)"


class StudyFlag(argparse.Action):
    """``--study NAME`` or ``--study path/NAME.yaml`` (as given to the search, which names the study ``NAME``):
    sets ``study`` to the stored name and ``study_path`` to the path when a file was named (else None)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, stored_study_name(values))
        namespace.study_path = Path(values) if is_study_path(values) else None


def add_stored_study_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    study: bool = True,
    artifacts: bool = False,
    condition: str = "",
) -> None:
    """Add ``--study`` (required, unless ``study`` is False: the command defines its own), ``--storage``,
    ``--run-dir`` and, with ``artifacts``, ``--artifact-dir``. ``condition`` starts each help text (``"with
    --study: "`` for a command that can also run without a stored study)."""
    if study:
        parser.add_argument("--study", required=True, action=StudyFlag, help="the stored study: " + STUDY_HELP)
    parser.add_argument("--storage", help=condition + storage_help())
    parser.add_argument("--run-dir", help=condition + RUN_DIR_HELP)
    if artifacts:
        parser.add_argument("--artifact-dir", help=condition + ARTIFACT_DIR_HELP)
