"""A new Python environment with only ``pip install -e '.[dmc]'`` trains a DeepMind Control task (issue 18).

Nothing from the test environment leaks in: a new virtual environment (no system site-packages), a process
environment holding only PATH and HOME, and a working folder outside the repository.
"""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from .search_helpers import ROOT

pytestmark = pytest.mark.slow


def test_a_new_environment_with_the_dmc_extra_trains_walker_walk(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f"{ROOT}[dmc]"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    work = tmp_path / "work"
    work.mkdir()
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [python, "-m", "vmpo_tune.search", "--study", "walker-walk", "--trials", "1", "--out", "run"]
        + ["--total-steps", "2048", "--eval-interval", "2048", "--eval-episodes", "1"],
        cwd=work,
        env=bare,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # one update of 8 envs x 256 steps, then one evaluation episode: the suite's 1,000 steps, a return in 0-1,000
    study = optuna.load_study(study_name="walker-walk", storage=f"sqlite:///{work / 'run' / 'study.db'}")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert 0.0 <= trial.value <= 1000.0 and list(trial.intermediate_values) == [2048]
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-2000:]
