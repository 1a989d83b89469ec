"""Watching a policy: returns that match the stored evaluation, headless videos, the study artifact, errors.

The videos are rendered by MuJoCo's offscreen renderer without a screen (EGL unless
MUJOCO_GL says otherwise): scripts/install-renderer installs it, and CI runs it.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import av
import numpy as np
import optuna
import pytest
import yaml

from vmpo_tune import records, video
from vmpo_tune.agent import VMPOAgent
from vmpo_tune.playback import play_episodes

from .search_helpers import TOY_STUDY, cli, write_study
from .study_fixture import TinyStudy, get, get_json, running_dashboard

PENDULUM = {
    **TOY_STUDY,
    "description": "short InvertedPendulum study for the play tests",
    "env_id": "InvertedPendulum-v5",
    "total_steps": 1024,
    "evaluation": {"interval": 512, "episodes": 3},
    "train": {"num_envs": 1, "rollout_steps": 128},
    "agent": {"policy_layer_sizes": [16], "value_layer_sizes": [16], "m_steps": 2},
    "search_space": {"policy_lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True, "default": 1.0e-3}},
    "sampler": {"name": "random"},
    "pruner": {"name": "none"},
}
EPISODE = re.compile(r"episode seed (\d+): return ([-\d.]+) \((\d+) steps\)")


def episodes(stdout: str) -> list[tuple[int, float, int]]:
    return [(int(s), float(r), int(n)) for s, r, n in EPISODE.findall(stdout)]


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A 2-trial InvertedPendulum search and its export (the file names the best checkpoint)."""
    root = tmp_path_factory.mktemp("play")
    write_study(root, PENDULUM, name="pend")
    proc = cli("vmpo_tune.search", "--study", "pend.yaml", "--out", "run", "--trials", "2", cwd=root)
    assert proc.returncode == 0, proc.stderr
    proc = cli("vmpo_tune.export", "--study", "pend", "--run-dir", "run", "--out", "best.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="pend", storage=f"sqlite:///{root / 'run' / 'study.db'}")
    return root, study


def test_grid_is_as_square_as_possible():
    assert [video.grid(n) for n in (1, 2, 3, 4, 5, 9, 10)] == [(1, 1), (2, 1), (2, 2), (2, 2), (3, 2), (3, 3), (4, 3)]
    with pytest.raises(ValueError):
        video.grid(0)


def test_tiled_video_places_episodes_and_dims_an_ended_one(tmp_path):
    path = tmp_path / "tiles.mp4"
    writer = video.TiledVideo(path, 3, tile=(32, 16), fps=10)
    white, grey = np.full((16, 32, 3), 240, np.uint8), np.full((16, 32, 3), 120, np.uint8)
    writer.add([white, grey, white])
    writer.add([white, None, white])  # episode 1 has ended
    writer.add([None, None, white])
    writer.close()
    frames = decode(path)
    assert len(frames) == 3 and frames[0].shape == (32, 64, 3)  # 2 x 2 tiles of 32 x 16
    tile = lambda f, i: f[(i // 2) * 16 + 4 : (i // 2 + 1) * 16 - 4, (i % 2) * 32 + 4 : (i % 2 + 1) * 32 - 4].mean()  # noqa: E731
    assert abs(tile(frames[0], 0) - 240) < 12 and abs(tile(frames[0], 1) - 120) < 12
    assert abs(tile(frames[1], 1) - 120 * 0.45) < 12  # dimmed once, and it stays so
    assert abs(tile(frames[2], 1) - 120 * 0.45) < 12 and abs(tile(frames[2], 0) - 240 * 0.45) < 12
    assert tile(frames[0], 3) < 12  # the fourth tile has no episode: black


def test_filming_changes_no_return_and_shows_every_step(tmp_path):
    agent = VMPOAgent(4, 1, "cpu", policy_layer_sizes=(16,), value_layer_sizes=(16,), seed=3)
    seeds = [10, 11]
    plain = play_episodes(agent, "InvertedPendulum-v5", seeds)
    filmed = play_episodes(agent, "InvertedPendulum-v5", seeds, tmp_path / "e.mp4", tile=(64, 48), fps=25)
    assert filmed == plain  # rendering reads the simulator and changes nothing in it, simplified scene or not
    full = play_episodes(agent, "InvertedPendulum-v5", seeds, tmp_path / "f.mp4", tile=(64, 48), full_quality=True)
    assert full == plain and len(decode(tmp_path / "f.mp4")) == max(plain.lengths) + 1
    frames = decode(tmp_path / "e.mp4")
    assert len(frames) == max(plain.lengths) + 1  # the reset, then one frame per step of the longest episode
    assert frames[0].shape == (48, 128, 3) and frames[0].max() > 0  # two tiles side by side, something drawn


def test_play_gives_the_return_the_best_evaluation_recorded(searched):
    root, study = searched
    best = max((t for t in study.trials if t.value is not None), key=lambda t: (t.value, -t.number))
    doc = yaml.safe_load((root / "best.yaml").read_text())
    assert doc["runs"][0]["trial"] == best.number and Path(doc["runs"][0]["checkpoint"]["path"]).is_file()
    proc = cli("vmpo_tune.play", "--config", "best.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    played = episodes(proc.stdout)
    assert [s for s, _, _ in played] == [10_000, 10_001, 10_002]  # the run's own evaluation seeds
    mean = float(np.mean([r for _, r, _ in played]))
    assert mean == pytest.approx(best.user_attrs[records.SEED_BEST_RETURNS][0], abs=1e-3)
    assert f"mean return {mean:.1f} over 3 episode(s)" in proc.stdout


def test_play_study_films_and_attaches_the_video(searched):
    root, study = searched
    proc = cli("vmpo_tune.play", "--study", "pend", "--run-dir", "run", "--video", "best.mp4", "--episodes", "2",
               "--seed", "7", cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    played = episodes(proc.stdout)
    assert [s for s, _, _ in played] == [7, 8]
    frames = decode(root / "best.mp4")
    assert len(frames) == max(n for _, _, n in played) + 1 and frames[0].shape == (240, 640, 3)
    best = study.best_trial.number
    metas = [m for m in optuna.artifacts.get_all_artifact_meta(study) if m.mimetype == records.VIDEO_MIMETYPE]
    assert [m.filename for m in metas] == [f"trial{best}_seed0_episodes.mp4"]
    stored = root / "run" / "artifacts" / metas[0].artifact_id
    assert stored.read_bytes() == (root / "best.mp4").read_bytes()
    assert "attached to study 'pend'" in proc.stdout
    # optuna-dashboard (a real server) lists the video among the study's artifacts and serves it
    with running_dashboard(TinyStudy(root, root / "run", name="pend"), root / "dashboard.log") as server:
        (summary,) = get_json(f"{server.base}/api/studies")["study_summaries"]
        shown = get_json(f"{server.base}/api/studies/{summary['study_id']}")["artifacts"]
        assert [(a["filename"], a["mimetype"]) for a in shown] == [(metas[0].filename, "video/mp4")]
        served = get(f"{server.base}/artifacts/{summary['study_id']}/{metas[0].artifact_id}")
        assert served == stored.read_bytes()


def test_play_trains_a_run_whose_checkpoint_is_missing_then_reuses_it(searched, tmp_path):
    root, study = searched
    doc = yaml.safe_load((root / "best.yaml").read_text())
    del doc["runs"][0]["checkpoint"]
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump(doc))
    proc = cli("vmpo_tune.play", "--config", "bare.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "training it on seed 0 for 1,024 env steps first" in proc.stderr
    best = study.trials[doc["runs"][0]["trial"]]
    mean = float(np.mean([r for _, r, _ in episodes(proc.stdout)]))
    assert mean == pytest.approx(best.user_attrs[records.SEED_BEST_RETURNS][0], abs=1e-3)  # the same run, again
    trial_dir = tmp_path / "runs" / "train" / f"pend-trial{best.number}" / "seed_0"
    assert (trial_dir / "best.pt").is_file()
    again = cli("vmpo_tune.play", "--config", "bare.yaml", cwd=tmp_path)
    assert again.returncode == 0 and "earlier train run" in again.stderr and "training it" not in again.stderr
    assert episodes(again.stdout) == episodes(proc.stdout)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "12x"], "--size must be WIDTHxHEIGHT"),
        (["--size", "8x8"], "between 16x16 and 4096x4096"),
        (["--video", "out.avi"], "name it FILE.mp4"),
        (["--checkpoint", "missing.pt"], "checkpoint missing.pt does not exist"),
        (["--checkpoint", "best.yaml"], "is not a vmpo-tune agent checkpoint"),
        (["--checkpoint", "truncated.pt"], "is not a vmpo-tune agent checkpoint"),
        (["--checkpoint", "foreign.pt"], "is not a vmpo-tune agent checkpoint"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(searched, args, message):
    root, _ = searched
    (root / "truncated.pt").write_bytes(b"PK\x03\x04" + bytes(200))  # the start of a zip, cut off
    (root / "foreign.pt").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))  # some other program's pickle
    proc = cli("vmpo_tune.play", "--config", "best.yaml", *args, cwd=root)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not list(root.glob("out.avi"))


def test_an_unusable_renderer_is_one_line_naming_the_fix(searched):
    root, _ = searched
    proc = cli("vmpo_tune.play", "--config", "best.yaml", "--video", "x.mp4", cwd=root, env={"MUJOCO_GL": "nope"})
    assert proc.returncode == 2 and "MUJOCO_GL='nope' is not one of egl, osmesa, glfw" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # GLFW needs a screen: without one the renderer cannot start, and the error says how to get a headless one
    screenless = {"DISPLAY": "", "WAYLAND_DISPLAY": "", "MUJOCO_GL": "glfw"}
    proc = cli("vmpo_tune.play", "--config", "best.yaml", "--video", "x.mp4", cwd=root, env=screenless)
    assert proc.returncode == 2 and "renderer did not start with MUJOCO_GL=glfw" in proc.stderr, proc.stderr
    assert "scripts/install-renderer" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (root / "x.mp4").exists()


def test_a_study_that_does_not_exist_is_one_line(tmp_path):
    proc = cli("vmpo_tune.play", "--study", "nothing", cwd=tmp_path)
    assert proc.returncode == 2 and "no stored study" in proc.stderr and not (tmp_path / "runs").exists()
