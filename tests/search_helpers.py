"""Helpers for end-to-end search tests: study files and CLI runs in real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]

TOY_STUDY = {
    "description": "toy study for tests",
    "env_id": "tests.toy_envs:Survive-v0",
    "total_steps": 512,
    "evaluation": {"interval": 256, "episodes": 2},
    "train": {"num_envs": 1, "rollout_steps": 64},
    "agent": {"policy_layer_sizes": [16], "value_layer_sizes": [16], "m_steps": 2},
    "search_space": {
        "policy_lr": {"choices": [1.0e-4, 10.0], "default": 1.0e-4},
        "reward_scale": {"choices": [1.0, 1.0e39], "default": 1.0},
        "epsilon_eta": {"low": 0.001, "high": 0.1, "log": True, "default": 0.01},
    },
    "sampler": {"name": "random"},
    "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
}


def write_study(folder: Path, data: dict | None = None, name: str = "toy") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(TOY_STUDY if data is None else data, sort_keys=False))
    return path


def cli(module: str, *args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run ``python -m module args`` like a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("VMPO_TUNE_STORAGE", None) if env is None or "VMPO_TUNE_STORAGE" not in env else None
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip


def load(url: str, name: str = "toy") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


