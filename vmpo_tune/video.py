"""Videos of episodes: MuJoCo's offscreen renderer, headless, encoded to H.264 MP4 with PyAV.

Rendering needs an OpenGL platform that works without a screen. :func:`use_headless_gl`
picks EGL (Mesa's software device works on any Linux machine; a GPU's is used when there is
one) unless ``MUJOCO_GL`` is set already; OSMesa is the fallback a user can choose with
``MUJOCO_GL=osmesa``. ``scripts/install-renderer`` installs either from Debian's packages.

:class:`TiledVideo` writes one frame per step of several episodes that run side by side:
each episode has its own tile, and an episode that has ended keeps its last frame, dimmed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UserError, first_line
from .simulator import INSTALL_RENDERER

GL_BACKENDS = ("egl", "osmesa", "glfw")
DEFAULT_TILE = (320, 240)
"""Width and height of one episode's picture, in pixels."""
DEFAULT_FPS = 50
_DIM = 0.45  # brightness of an ended episode's last frame


def use_headless_gl() -> None:
    """Choose MuJoCo's OpenGL platform before anything renders.

    ``MUJOCO_GL`` (and PyOpenGL's ``PYOPENGL_PLATFORM``) are read when the first renderer
    starts, so this must run before then; a value the user set is kept.
    """
    backend = os.environ.setdefault("MUJOCO_GL", "egl").lower()
    if backend not in GL_BACKENDS:
        raise UserError(f"MUJOCO_GL={backend!r} is not one of {', '.join(GL_BACKENDS)}; unset it or pick one of them")
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)


def simplify_scene(model) -> None:
    """Drop shadows, reflections and multisampling from a MuJoCo model's pictures: software rendering gets
    about 9 times faster (Hopper at 320x240: 9 ms a picture instead of 85). Only what is drawn changes;
    the physics reads none of these fields."""
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0
    model.mat_reflectance[:] = 0


def renderer_error(exc: BaseException) -> UserError:
    """The one-line error for a renderer that would not start, with the fix."""
    backend = os.environ.get("MUJOCO_GL", "egl")
    return UserError(
        f"MuJoCo's offscreen renderer did not start with MUJOCO_GL={backend} ({first_line(exc)}); install a "
        f"headless one with {INSTALL_RENDERER} (as root) and use MUJOCO_GL=egl (the default) or osmesa"
    )


def check_available() -> None:
    """A one-line error when PyAV, the video encoder, is missing (call it before anything runs)."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise UserError("recording a video needs PyAV: pip install 'vmpo-tune[video]'") from None


def grid(n: int) -> tuple[int, int]:
    """Columns and rows of the tiles of ``n`` episodes: as square as possible, wider than tall."""
    if n < 1:
        raise ValueError(f"a video needs at least one episode, got {n}")
    cols = math.ceil(math.sqrt(n))
    return cols, math.ceil(n / cols)


class TiledVideo:
    """An MP4 file of ``n`` episodes side by side, one frame per environment step."""

    def __init__(self, path: str | Path, n: int, tile: tuple[int, int] = DEFAULT_TILE, fps: int = DEFAULT_FPS) -> None:
        import av

        self.path, self.tile = Path(path), tile
        self.cols, self.rows = grid(n)
        width, height = tile[0] * self.cols, tile[1] * self.rows
        self._last: list[np.ndarray | None] = [None] * n
        self._canvas = np.zeros((height, width, 3), dtype=np.uint8)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=fps)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2  # yuv420p needs even sizes
        self._stream.pix_fmt = "yuv420p"

    def add(self, pictures: Sequence[np.ndarray | None]) -> None:
        """One step: each episode's new picture, or None for an episode that has ended (its last one, dimmed)."""
        import av

        for i, picture in enumerate(pictures):
            if picture is not None:
                self._last[i] = picture
                self._paste(i, picture)
            elif self._last[i] is not None:
                self._paste(i, (self._last[i] * _DIM).astype(np.uint8))
                self._last[i] = None  # dimmed once; it stays on the canvas
        frame = av.VideoFrame.from_ndarray(self._padded(), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def _paste(self, i: int, picture: np.ndarray) -> None:
        w, h = self.tile
        row, col = divmod(i, self.cols)
        self._canvas[row * h : (row + 1) * h, col * w : (col + 1) * w] = picture[:h, :w]

    def _padded(self) -> np.ndarray:
        h, w = self._stream.height, self._stream.width
        if (h, w) == self._canvas.shape[:2]:
            return self._canvas
        out = np.zeros((h, w, 3), dtype=np.uint8)
        out[: self._canvas.shape[0], : self._canvas.shape[1]] = self._canvas
        return out
