"""What ``--study`` names (a ground-floor module: the search reads study files by it, and the reading commands
open stored studies by it): a study in the studies folders (``hopper``) or a study file (``path/NAME.yaml``), and
the name a search stores that study under."""

from __future__ import annotations

import os
from pathlib import Path


def is_study_path(name_or_path: str) -> bool:
    """Whether ``--study`` names a file (``x.yaml``, ``dir/x``) rather than a study in the studies folders."""
    return Path(name_or_path).suffix in (".yaml", ".yml") or os.sep in name_or_path


def stored_study_name(name_or_path: str | Path) -> str:
    """The name a search stores a study under (unless ``--study-name`` says otherwise): the file's stem for a study
    file (a :class:`~pathlib.Path`, or ``--study path/NAME.yaml``), else the study name itself, so the commands that
    read a stored study take the search's ``--study``."""
    if isinstance(name_or_path, Path) or is_study_path(name_or_path):
        return Path(name_or_path).stem
    return name_or_path
