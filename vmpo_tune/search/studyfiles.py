"""Where studies live: ``--study NAME`` finds ``<NAME>.yaml`` in $VMPO_TUNE_STUDIES, ./studies or the repository's
studies/ folder; a path to a YAML file is used as it is."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..study_names import is_study_path
from .yamlfile import read_yaml


def studies_dirs() -> list[Path]:
    """Where ``--study NAME`` looks: $VMPO_TUNE_STUDIES, ./studies, then the repo's studies/."""
    dirs = []
    if os.environ.get("VMPO_TUNE_STUDIES"):
        dirs.append(Path(os.environ["VMPO_TUNE_STUDIES"]))
    dirs += [Path.cwd() / "studies", Path(__file__).resolve().parents[2] / "studies"]
    seen, out = set(), []
    for d in dirs:
        if d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def available_studies() -> list[str]:
    names = set()
    for d in studies_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def study_listing() -> str:
    """One line per available study: its name, env and status (for --help)."""
    lines = []
    for name in available_studies():
        try:
            data = read_yaml(find_study(name))
        except UserError:
            lines.append(f"  {name}: (unreadable study file)")
            continue
        data = data if isinstance(data, dict) else {}
        status = str(data.get("status") or "status not stated")
        steps = data.get("total_steps")
        steps = f"{steps:,}" if isinstance(steps, int) else "?"
        lines.append(f"  {name} ({data.get('env_id', '?')}, {steps} steps): {status}")
    return "\n".join(lines) or "  none found"


def find_study(name_or_path: str) -> Path:
    """``hopper`` -> ``studies/hopper.yaml``; a path to a YAML file is used as it is."""
    candidate = Path(name_or_path)
    if is_study_path(name_or_path):
        if not candidate.is_file():
            raise UserError(f"study file {name_or_path} does not exist; pass an existing YAML file or a study name")
        return candidate
    for d in studies_dirs():
        path = d / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    names = available_studies()
    listing = ", ".join(names) if names else "none found"
    raise UserError(
        f"unknown study {name_or_path!r}; available: {listing} (looked in "
        f"{', '.join(str(d) for d in studies_dirs())}); pass --study NAME or --study path/to/file.yaml"
    )
