"""Optuna's own command line works on the studies vmpo-tune stores (the README documents it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .search_helpers import TOY_STUDY, cli, load, write_study


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = tmp_path_factory.mktemp("optuna-cli")
    write_study(root, {**TOY_STUDY, "search_space": {"epsilon_eta": TOY_STUDY["search_space"]["epsilon_eta"]}})
    proc = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "2",
        "--confirm-top",
        "1",
        "--confirm-seeds",
        "1",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    return root, f"sqlite:///{root / 'run' / 'study.db'}"


def optuna_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    here = Path(sys.executable).parent / "optuna"  # this interpreter's environment, activated or not
    exe = str(here) if here.exists() else shutil.which("optuna")
    assert exe, "the optuna command is installed with optuna"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_studies_trials_best_trial_and_delete_study(stored):
    root, url = stored
    studies = optuna_cli("studies", "--storage", url, "-f", "json", cwd=root)
    assert studies.returncode == 0, studies.stderr
    listed = {s["name"]: s for s in json.loads(studies.stdout)}
    assert set(listed) == {"toy", "toy/confirm"} and listed["toy"]["n_trials"] == 2
    trials = optuna_cli("trials", "--storage", url, "--study-name", "toy", "-f", "yaml", cwd=root)
    assert trials.returncode == 0, trials.stderr
    assert [t["number"] for t in yaml.safe_load(trials.stdout)] == [0, 1]
    best = optuna_cli("best-trial", "--storage", url, "--study-name", "toy", "-f", "json", cwd=root)
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["number"] == load(url).best_trial.number
    gone = optuna_cli("delete-study", "--storage", url, "--study-name", "toy/confirm", cwd=root)
    assert gone.returncode == 0, gone.stderr
    left = json.loads(optuna_cli("studies", "--storage", url, "-f", "json", cwd=root).stdout)
    assert [s["name"] for s in left] == ["toy"]
