"""DeepMind Control tasks (the [dmc] extra): real suite environments, no mocks.

Ids in both forms, the flattening order, the suite's episodes and returns, no warning flood,
headless by default, one-line errors (missing extra, unknown domain or task), and a search that
trains, evaluates, resumes exactly and plays.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import optuna
import pytest
import torch

from vmpo_tune import dmc
from vmpo_tune.envs import EnvError, check_env_id, make_eval_envs
from vmpo_tune.trainer import VMPOTrainer

from .search_helpers import ROOT, cli, write_study

WALKER = "dm_control/walker-walk-v0"


def test_both_id_forms_name_the_same_registered_task():
    assert check_env_id("dm_control/walker/walk") == WALKER
    assert check_env_id(WALKER) == WALKER
    assert check_env_id("dm_control/cheetah/run") == "dm_control/cheetah-run-v0"
    assert check_env_id("dm_control/ball_in_cup/catch") == "dm_control/ball_in_cup-catch-v0"  # a domain with "_"


@pytest.mark.parametrize(
    "env_id, message",
    [
        ("dm_control/wlker/walk", r"unknown DeepMind Control domain 'wlker'.*domains: acrobot, ball_in_cup,.*walker"),
        (
            "dm_control/walker/fly",
            r"unknown task 'fly' for DeepMind Control domain 'walker'.*walker has: run, stand, walk",
        ),
        ("dm_control/walker-fly-v0", r"unknown task 'fly'.*walker has: run, stand, walk"),
    ],
)
def test_an_unknown_domain_or_task_lists_the_valid_ones(env_id, message):
    with pytest.raises(EnvError, match=message):
        check_env_id(env_id)


def test_the_observation_is_the_suites_dictionary_in_observation_spec_order():
    (env,) = make_eval_envs("dm_control/walker/walk", 1)
    obs, _ = env.reset(seed=4)
    assert env.keys == ("orientations", "height", "velocity") and env.sizes == (14, 1, 9)
    assert env.observation_space.shape == (24,) and obs.shape == (24,)
    base = env.unwrapped._env  # the dm_control Environment: its task reads the observation off the physics
    raw = base.task.get_observation(base.physics)
    assert list(raw) == ["orientations", "height", "velocity"]  # the task's own order (not alphabetical)
    expected = np.concatenate([np.asarray(raw[k], dtype=np.float64).ravel() for k in raw])
    np.testing.assert_array_equal(obs, expected)
    np.testing.assert_array_equal(obs[14:15], [base.physics.torso_height()])  # height sits after the 14 angles
    assert env.metadata["render_fps"] == 40  # one picture per 25 ms control step


def test_an_episode_is_the_suites_1000_steps_with_a_return_in_0_to_1000():
    (env,) = make_eval_envs("dm_control/walker/walk", 1)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    total, steps, done = 0.0, 0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 6))
        assert 0.0 <= reward <= 1.0
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert steps == 1000 and truncated and not terminated  # a time limit, not a failure: bootstrap from it
    assert 0.0 < total < 1000.0


def _run(code: str, **env) -> subprocess.CompletedProcess:
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY")}
    full.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full, timeout=120
    )


def test_no_warning_flood_and_headless_without_a_display():
    proc = _run(
        """
        import os, warnings
        import vmpo_tune.envs as envs
        before = list(warnings.filters)
        vec = envs.make_vector_env("dm_control/walker/walk", 2, 0)
        assert warnings.filters == before, "importing the suite changed the process's warning filters"
        vec.reset(seed=0)
        warnings.simplefilter("default")  # what a user's script shows: every warning once per place
        with warnings.catch_warnings(record=True) as seen:
            for _ in range(200):
                vec.step(vec.action_space.sample())
        print(len(seen), os.environ["MUJOCO_GL"])
        """
    )
    assert proc.returncode == 0, proc.stderr
    count, platform = proc.stdout.split()
    assert count == "0" and platform in ("egl", "osmesa", "disabled")
    assert "GLFW" not in proc.stderr and "DISPLAY" not in proc.stderr, proc.stderr


def test_a_missing_extra_is_one_line_naming_the_install(tmp_path):
    blocker = tmp_path / "sitecustomize.py"  # this interpreter without dm_control / shimmy installed
    blocker.write_text("import sys\nsys.modules['shimmy'] = None\nsys.modules['dm_control'] = None\n")
    study = {**_study(), "total_steps": 512}
    write_study(tmp_path, study, name="ww")
    proc = cli("vmpo_tune.search", "--study", "ww.yaml", "--trials", "1", "--out", "run", cwd=tmp_path,
               env={"PYTHONPATH": f"{tmp_path}:{ROOT}"})  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error:")
    assert "DeepMind Control tasks need the dmc extra" in proc.stderr and "pip install -e '.[dmc]'" in proc.stderr
    assert not (tmp_path / "run" / "study.db").exists() or _trials(tmp_path / "run" / "study.db") == 0


def _trials(db: Path) -> int:
    try:
        return len(optuna.load_study(study_name="ww", storage=f"sqlite:///{db}").trials)
    except KeyError:
        return 0


def _trainer():
    return VMPOTrainer(WALKER, 3, "cpu", (16,), (16,), 64, num_envs=2, eval_interval=256, eval_episodes=2, m_steps=2)


def test_training_resumes_exactly_mid_episode(tmp_path):
    """Stopped at 512 steps (mid-episode: the suite's episodes are 1,000 steps), rebuilt from the state file:
    the same curve and weights as a run that never stopped (the physics, task RNG and counters travel)."""
    straight = _trainer()
    straight.train(1024, None, log_evaluations=False)
    first = _trainer()
    first.train(1024, tmp_path, callback=lambda steps, _: steps >= 512, log_evaluations=False)
    assert first.env_steps == 512 and first.can_resume_exactly
    resumed = _trainer()
    resumed.train(1024, tmp_path, resume=True, log_evaluations=False)
    assert resumed.resumed_exactly is True
    curve = [(r["env_steps"], r["eval/return_mean"], r["loss/policy"]) for r in straight.history]
    assert [(r["env_steps"], r["eval/return_mean"], r["loss/policy"]) for r in resumed.history] == curve
    for p, q in zip(straight.agent.policy.parameters(), resumed.agent.policy.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert all(0.0 <= r["eval/return_mean"] <= 1000.0 for r in straight.history)


def _study() -> dict:
    return {
        "description": "walker-walk, a few updates",
        "env_id": "dm_control/walker/walk",
        "total_steps": 1024,
        "evaluation": {"interval": 512, "episodes": 2},
        "train": {"num_envs": 2, "rollout_steps": 64},
        "agent": {"policy_layer_sizes": [16], "value_layer_sizes": [16], "m_steps": 2},
        "search_space": {"policy_lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True, "default": 1.0e-3}},
        "sampler": {"name": "random"},
        "pruner": {"name": "none"},
    }


def test_a_search_trains_evaluates_exports_and_plays_a_suite_task(tmp_path):
    write_study(tmp_path, _study(), name="ww")
    proc = cli("vmpo_tune.search", "--study", "ww.yaml", "--trials", "1", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "MuJoCo library version" not in proc.stderr and "OpenGL_accelerate" not in proc.stderr  # no start-up notes
    study = optuna.load_study(study_name="ww", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and 0.0 < trial.value < 1000.0
    assert sorted(trial.intermediate_values) == [512, 1024]
    proc = cli("vmpo_tune.export", "--study", "ww", "--run-dir", "run", "--out", "best.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = cli("vmpo_tune.train", "--config", "best.yaml", cwd=tmp_path)  # the trial again, bit for bit
    assert proc.returncode == 0, proc.stderr
    assert f"final {trial.value:.1f}" in proc.stdout
    proc = cli("vmpo_tune.play", "--config", "best.yaml", "--episodes", "2", "--video", "ww.mp4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(1000 steps)") == 2  # two whole suite episodes
    with av.open(str(tmp_path / "ww.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.average_rate == 40
    assert len(frames) == 1001 and frames[-1].max() > 0  # the reset, then one picture per control step


def test_the_suite_domains_and_tasks_are_dm_controls():
    known = dmc.tasks()
    assert sorted(known["walker"]) == ["run", "stand", "walk"] and sorted(known["cheetah"]) == ["run"]
    assert len(known) == 19 and min(known) == "acrobot"  # the suite's domains in dm-control 1.0.50
