"""Watching a trained policy: load a checkpoint, run deterministic episodes, optionally film them.

:func:`play_episodes` runs the episodes exactly as an evaluation does (one environment per
episode, stepped together, the policy mean as the action), so a checkpoint played on the
evaluation seeds of its run gives the very returns that evaluation recorded, video or not:
rendering reads the simulator and changes nothing in it.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import video
from .agent import VMPOAgent
from .envs import make_eval_envs, mujoco_model
from .errors import UserError, first_line
from .evaluation import EvalResult, run_episodes

log = logging.getLogger(__name__)


def load_agent(path: str | Path, device: torch.device | str = "cpu") -> VMPOAgent:
    """The agent of a checkpoint file (a run's ``best.pt``, or :meth:`VMPOAgent.save` output)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; pass an existing file to --checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle before refusing it: the error says it
            warnings.simplefilter("ignore")
            return VMPOAgent.load(path, device)
    except (pickle.UnpicklingError, KeyError, RuntimeError, ValueError, EOFError) as exc:
        raise UserError(f"{path} is not a vmpo-tune agent checkpoint ({first_line(exc)})") from None


def play_episodes(
    agent: VMPOAgent,
    env_id: str,
    seeds: Sequence[int],
    video_path: str | Path | None = None,
    tile: tuple[int, int] = video.DEFAULT_TILE,
    fps: int | None = None,
    full_quality: bool = False,
) -> EvalResult:
    """One deterministic episode per seed, stepped together; with ``video_path``, filmed side by side
    at ``fps`` frames per second (default: the environment's own rate, so the video runs in real time),
    without shadows, reflections and antialiasing unless ``full_quality`` (see :func:`video.simplify_scene`)."""
    if video_path is None:
        envs = make_eval_envs(env_id, len(seeds))
        try:
            return run_episodes(agent, envs, seeds)
        finally:
            for env in envs:
                env.close()
    video.check_available()
    video.use_headless_gl()
    envs = make_eval_envs(env_id, len(seeds), render_size=tile)
    if not full_quality:
        for env in envs:
            video.simplify_scene(mujoco_model(env))
    fps = fps or round(envs[0].metadata.get("render_fps") or video.DEFAULT_FPS)
    writer: list[video.TiledVideo] = []

    def film(stepped: np.ndarray) -> None:
        if not writer:  # after the reset: the renderer starts here, and a missing platform is a one-line error
            _render(envs[0])
            writer.append(video.TiledVideo(video_path, len(seeds), tile, fps))
            log.info("filming %d episode(s) of %s into %s at %d frames/s", len(seeds), env_id, video_path, fps)
        pictures: list = [None] * len(envs)
        for i in stepped:
            pictures[i] = envs[i].render()
        writer[0].add(pictures)

    try:
        return run_episodes(agent, envs, seeds, on_step=film)
    finally:
        for w in writer:
            w.close()
        for env in envs:
            env.close()


def _render(env) -> None:
    try:
        with warnings.catch_warnings():  # GLFW warns before it fails; the error below says it all
            warnings.simplefilter("ignore")
            env.render()
    except Exception as exc:  # the renderer's errors come from several libraries (GL, EGL, MuJoCo)
        raise video.renderer_error(exc) from exc
