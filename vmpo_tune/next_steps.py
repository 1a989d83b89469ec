"""What a search or a confirmation suggests doing next: commands that work on the current install, in order.

A suggestion that needs an extra (the report's pandas and plotly, the video's PyAV and a
headless OpenGL library) is replaced by the install line that makes it work, and an
``export`` suggestion never names a file that exists already (export refuses to overwrite).
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import shlex
from pathlib import Path

from . import records
from .records import default_run_dir
from .redaction import redact_url
from .search.space import params_to_values
from .search.spec import StudySpec, default_values

ANALYSIS_INSTALL = "pip install -e '.[analysis]'"
VIDEO_INSTALL = "pip install -e '.[video]' and, as root, scripts/install-renderer"


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def can_film() -> bool:
    """PyAV installed and a headless OpenGL library (EGL or OSMesa) present: ``play --video`` can work."""
    return _installed("av") and bool(ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa"))


def free_name(stem: str, suffix: str, folder: Path | None = None) -> str:
    """``stem + suffix``, or ``stem-2 + suffix``, ... : the first name not taken in ``folder`` (the cwd)."""
    folder = folder or Path.cwd()
    name, n = f"{stem}{suffix}", 1
    while (folder / name).exists():
        n += 1
        name = f"{stem}-{n}{suffix}"
    return name


def held_out_pending(study) -> bool:
    """The study's confirmed winner is not its default and has not been checked on held-out seeds yet (a check of
    an earlier winner does not count)."""
    confirmed = records.read_confirmation(study)
    if not confirmed or confirmed[0].is_baseline:
        return False
    checked = {c.source_trial for c in records.read_held_out(study) if not c.is_baseline}
    return confirmed[0].source_trial not in checked


def adoptable(study, spec: StudySpec | None = None) -> bool:
    """The study's confirmed winner is not its default and is resolved ahead of it: ``adopt`` would take it (with
    ``spec``, the study file: unless its defaults are the winner's already)."""
    confirmed = records.read_confirmation(study)
    if not confirmed or confirmed[0].vs_baseline != "better":
        return False
    if spec is None or confirmed[0].source_trial is None:
        return True
    values = params_to_values(spec.space, study.trials[confirmed[0].source_trial].params)
    defaults = default_values(spec)
    return any(defaults.get(k) != v for k, v in values.items())


SECRET_STORAGE = "'<the same --storage URL; its password is not shown>'"


def locating_flags(study_name: str, storage: str | None, out: str | None) -> list[str]:
    """The flags another command needs to find this study: none for the default places. A storage URL with a
    password is not repeated (a hint printed with ``***`` would not work): the hint says to pass the same one."""
    flags = []
    if storage:
        flags += ["--storage", SECRET_STORAGE if redact_url(storage) != storage else shlex.quote(storage)]
    if out and Path(out) != default_run_dir(study_name):
        flags += ["--run-dir", shlex.quote(str(out))]
    return flags


def suggestions(
    study: str, where: list[str], *, confirmed: bool, workers: int, held_out: bool = False, adopt: bool = False
) -> list[str]:
    """The next commands for ``study`` (``where``: the flags that locate it), in the order a user takes them;
    ``held_out``: suggest checking the confirmed winner on held-out seeds first; ``adopt``: suggest making it the
    study file's default."""
    loc = " ".join([f"--study {shlex.quote(study)}", *where])
    stem = study.replace("/", "-")
    lines = []
    if not confirmed:
        lines.append(
            f"confirm the best 3 on fresh seeds: python -m vmpo_tune.confirm {loc} --top 3 --seeds 10 "
            f"--workers {workers}"
        )
    if held_out:
        lines.append(
            f"check the winner on seeds nothing chose: python -m vmpo_tune.confirm {loc} --held-out --seeds 10 "
            f"--workers {workers}"
        )
    report = f"python -m analysis.report {loc}"
    if _installed("pandas", "plotly"):
        lines.append(f"read the report:    {report}")
    else:
        lines.append(f"read the report:    {ANALYSIS_INSTALL}, then {report}")
    out = free_name(f"{stem}-best", ".yaml")
    lines.append(f"take the winner:    python -m vmpo_tune.export {loc} --out {out}")
    lines.append(f"train it again:     python -m vmpo_tune.train --config {out}")
    if adopt:
        lines.append(f"make it the default: python -m vmpo_tune.adopt {loc}")
    if can_film():
        lines.append(f"watch it:           python -m vmpo_tune.play {loc} --video {free_name(stem + '-best', '.mp4')}")
    else:
        lines.append(f"watch it:           python -m vmpo_tune.play {loc}   (a video needs {VIDEO_INSTALL})")
    return lines
