"""Bad input is a one-line error naming the problem and the fix, exit 2, nothing lost."""

from __future__ import annotations

import contextlib
import copy
import subprocess

import pytest

from .search_helpers import TOY_STUDY, cli, load, write_study


def mutate(change):
    data = copy.deepcopy(TOY_STUDY)
    change(data)
    return data


CASES = {
    "unknown top-level key": (lambda d: d.update(prunner={"name": "median"}), ["toy.yaml", "prunner", "valid:"]),
    "unknown parameter": (
        lambda d: d["search_space"].update(polcy_lr={"low": 0.1, "high": 1.0}),
        ["search_space.polcy_lr", "unknown parameter"],
    ),
    "low >= high": (
        lambda d: d["search_space"].update(value_lr={"low": 0.01, "high": 0.001}),
        ["search_space.value_lr", "low (0.01) must be < high (0.001)"],
    ),
    "log with low <= 0": (
        lambda d: d["search_space"].update(value_lr={"low": 0.0, "high": 0.1, "log": True}),
        ["search_space.value_lr", "log scale needs low > 0"],
    ),
    "unknown env": (lambda d: d.update(env_id="Hoper-v5"), ["env_id", "unknown env id 'Hoper-v5'", "Hopper-v5"]),
    "discrete actions": (lambda d: d.update(env_id="CartPole-v1"), ["env_id", "Discrete action space"]),
    "unknown param key": (lambda d: d["search_space"]["epsilon_eta"].update(lg=True), ["epsilon_eta.lg"]),
    "default outside range": (
        lambda d: d["search_space"]["epsilon_eta"].update(default=5.0),
        ["epsilon_eta.default", "outside the range"],
    ),
    "bad fixed agent key": (lambda d: d["agent"].update(m_stepz=3), ["agent.m_stepz", "unknown VMPOConfig field"]),
    "bad fixed value": (lambda d: d["agent"].update(m_steps=0), ["agent", "m_steps must be a positive integer"]),
    "unknown sampler": (lambda d: d.update(sampler={"name": "bayes"}), ["sampler.name", "tpe, random"]),
    "unknown sampler option": (
        lambda d: d.update(sampler={"name": "tpe", "n_startup": 3}),
        ["sampler.n_startup", "TPESampler"],
    ),
    "condition on unknown": (
        lambda d: d["search_space"]["epsilon_eta"].update(when={"gae": True}),
        ["epsilon_eta.when"],
    ),
}


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("case", sorted(CASES))
def test_study_file_errors(tmp_path, case):
    change, needles = CASES[case]
    write_study(tmp_path, mutate(change))
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "1", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run" / "study.db").exists()  # validated before anything ran


def test_malformed_yaml_names_file_and_line(tmp_path):
    (tmp_path / "toy.yaml").write_text("env_id: Hopper-v5\ntotal_steps: 100\nsearch_space:\n  x: [1, 2\n  y: 3\n")
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", cwd=tmp_path)
    assert_one_line_error(proc, "toy.yaml:4", "malformed YAML")  # the line of the unclosed bracket


def test_unknown_study_lists_the_available_ones(tmp_path):
    (tmp_path / "studies").mkdir()
    write_study(tmp_path / "studies", name="alpha")
    proc = cli("vmpo_tune.search", "--study", "alpah", cwd=tmp_path)
    assert_one_line_error(proc, "unknown study 'alpah'", "alpha", "hopper")


@pytest.mark.parametrize("flag,value", [("--trials", "0"), ("--trials", "-3"), ("--workers", "0")])
def test_non_positive_counts_are_rejected(tmp_path, flag, value):
    write_study(tmp_path)
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", flag, value, cwd=tmp_path)
    assert proc.returncode == 2 and "must be a positive integer" in proc.stderr and "Traceback" not in proc.stderr


@contextlib.contextmanager
def read_only_folder(path):
    """A folder nobody can write to, root included (immutable flag), else a plain chmod."""
    path.mkdir()
    immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    if not immutable:
        path.chmod(0o555)
    try:
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def test_sqlite_in_a_missing_or_read_only_folder(tmp_path):
    write_study(tmp_path)
    missing = cli(
        "vmpo_tune.search", "--study", "toy.yaml", "--storage", f"sqlite:///{tmp_path}/no/such/s.db", cwd=tmp_path
    )
    assert_one_line_error(missing, "does not exist", "--storage")
    with read_only_folder(tmp_path / "ro") as ro:
        proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", f"sqlite:///{ro}/s.db", cwd=tmp_path)
        assert_one_line_error(proc, "not writable")
        out = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", str(ro / "sub"), cwd=tmp_path)
        assert_one_line_error(out, "cannot create the output folder")


def test_existing_study_with_another_search_space_is_refused_and_kept(tmp_path):
    write_study(tmp_path)
    assert cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "1", "--out", "run", cwd=tmp_path).returncode == 0
    write_study(tmp_path, mutate(lambda d: d["search_space"].pop("epsilon_eta")))
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "2", "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, "another env, budget", "--study-name")
    assert len(load(f"sqlite:///{tmp_path}/run/study.db").trials) == 1


def test_debug_shows_the_traceback(tmp_path):
    write_study(tmp_path, mutate(lambda d: d.update(env_id="Hoper-v5")))
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--debug", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_a_mujoco_gl_that_cannot_start_is_one_line_with_the_fix_and_stores_nothing(tmp_path):
    """MuJoCo imports the OpenGL platform MUJOCO_GL names with itself: a name it does not know (or, on a machine
    without the library, egl / osmesa) fails inside ``import mujoco``, before any env exists."""
    write_study(tmp_path)
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", cwd=tmp_path, env={"MUJOCO_GL": "bogus"})
    assert_one_line_error(proc, "MUJOCO_GL=bogus", "scripts/install-renderer")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("platform", ["egl", "osmesa"])
def test_a_headless_mujoco_gl_adds_no_start_up_notes(tmp_path, platform):
    """With MUJOCO_GL=egl or osmesa (usual on servers, and what DeepMind Control tasks set), MuJoCo imports
    PyOpenGL, which logs "No OpenGL_accelerate module loaded" at INFO: a bad input stays one line and a search's
    console shows no such note (shown with --debug)."""
    env = {"MUJOCO_GL": platform, "PYOPENGL_PLATFORM": platform}
    write_study(tmp_path)
    bad = cli("vmpo_tune.search", "--study", "toy.yaml", "--storage", "sqlite:////no/such/x.db", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    ok = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "1", cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "OpenGL" not in ok.stdout + ok.stderr
    debug = cli(
        "vmpo_tune.search", "--study", "toy.yaml", "--storage", "sqlite:////no/x.db", "--debug", cwd=tmp_path, env=env
    )
    assert "OpenGL_accelerate" in debug.stderr  # the note exists: the test above would see it


@pytest.mark.parametrize(
    "module",
    [
        "vmpo_tune.search.cli",
        "vmpo_tune.confirm",
        "vmpo_tune.export",
        "vmpo_tune.adopt",
        "vmpo_tune.play",
        "analysis.report",
    ],
)
def test_every_command_that_opens_a_study_names_every_storage_form_in_its_help(module):
    import importlib

    help_text = " ".join(importlib.import_module(module).build_parser().format_help().split())
    for form in ("journal:///", "redis://", "grpc://", "$VMPO_TUNE_STORAGE", "sqlite:///"):
        assert form in help_text, (module, form)
