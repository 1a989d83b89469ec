"""Real stored studies for the analysis, dashboard and browser tests.

* :func:`shared_tiny_study`: a small search run through the CLI in a subprocess (made once per
  test session): the default trial COMPLETE (50), a wrecked learning rate COMPLETE (low,
  before the pruner starts), infinite rewards FAIL, the wrecked rate again PRUNED, then
  random trials. Its note is saved the way the search will save it.
* :func:`make_unfinished_study`: only a PRUNED and a FAIL trial, written with Optuna.
* :func:`make_empty_study`: a study with no trial at all.
* :func:`running_dashboard`: a real ``optuna-dashboard`` server on the tiny study.

Test modules wrap the ``shared_*`` functions in their own session fixtures; the search
runs once per session whichever module asks first.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from analysis.dashboard import dashboard_argv
from vmpo_tune.records import STUDY_INFO as SPEC_ATTR

from .search_helpers import TOY_STUDY, cli, write_study

NAME = "toy"
# pruning starts once two trials are complete, so the second (wrecked) trial completes with a low value
STUDY_FILE = {**TOY_STUDY, "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0}}
WRECKED = {"policy_lr": 10.0, "reward_scale": 1.0, "epsilon_eta": 0.01}
INFINITE = {"policy_lr": 1.0e-4, "reward_scale": 1.0e39, "epsilon_eta": 0.01}
N_TRIALS = 6


@dataclass(frozen=True)
class TinyStudy:
    root: Path  # the search's working directory
    run: Path  # its --out folder: study.db and artifacts/

    name: str = NAME

    @property
    def db(self) -> Path:
        return self.run / "study.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def artifacts(self) -> Path:
        return self.run / "artifacts"

    def load(self) -> optuna.Study:
        return optuna.load_study(study_name=self.name, storage=self.url)


def _search(root: Path, trials: int) -> None:
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", str(trials), cwd=root)
    assert proc.returncode == 0, proc.stderr


def make_tiny_study(root: Path) -> TinyStudy:
    write_study(root, STUDY_FILE)
    _search(root, 1)
    tiny = TinyStudy(root, root / "run")
    study = tiny.load()
    for params in (WRECKED, INFINITE, WRECKED):
        study.enqueue_trial(params)
    _search(root, N_TRIALS)
    return tiny


_made: dict[str, Any] = {}


def shared_tiny_study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    """The tiny study, searched once per test session whichever test module asks first."""
    if "study" not in _made:
        _made["study"] = make_tiny_study(tmp_path_factory.mktemp("tiny-study"))
    return _made["study"]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


SECRET = "hunter2"
SECRET_COMMAND = f"search --storage postgresql://me:{SECRET}@db/optuna"
SPACE = {"policy_lr": CategoricalDistribution([1.0e-4, 10.0]), "epsilon_eta": FloatDistribution(0.001, 0.1, log=True)}


def make_unfinished_study(path: Path, name: str = "stalled") -> optuna.Study:
    """A PRUNED trial with a learning curve and a FAIL trial with a reason (and a password in its command)."""
    study = optuna.create_study(storage=sqlite_url(path), study_name=name, direction="maximize")
    study.set_user_attr(
        SPEC_ATTR,
        {
            "name": name,
            "env_id": "tests.toy_envs:Survive-v0",
            "description": "stalled",
            "total_steps": 512,
            "seeds_per_trial": 1,
            "aggregate": "mean",
            "objective": "final",
        },
    )
    study.add_trial(
        create_trial(
            state=TrialState.PRUNED,
            params={"policy_lr": 10.0, "epsilon_eta": 0.01},
            distributions=SPACE,
            intermediate_values={256: 3.0},
            user_attrs={"wall_time_s": 0.5, "env_steps_per_s": 512.0},
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"policy_lr": 1.0e-4, "epsilon_eta": 0.02},
            distributions=SPACE,
            user_attrs={"fail_reason": "diverged: NaN or inf", "provenance": {"command": SECRET_COMMAND}},
        )
    )
    return study


def make_empty_study(path: Path, name: str = "empty") -> optuna.Study:
    return optuna.create_study(storage=sqlite_url(path), study_name=name, direction="maximize")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Report:
    proc: Any  # the CompletedProcess of ``python -m analysis.report``
    html: Path
    csv: Path
    parquet: Path


def shared_tiny_report(tiny: TinyStudy) -> Report:
    """``python -m analysis.report`` on the tiny study with its default --out (``run/report.html``), once."""
    if "report" not in _made:
        proc = cli("analysis.report", "--study", NAME, "--run-dir", "run", cwd=tiny.root)
        run = tiny.run
        _made["report"] = Report(proc, run / "report.html", run / "report-trials.csv", run / "report-trials.parquet")
    return _made["report"]


def dashboard_executable() -> str:
    """``optuna-dashboard`` from this interpreter's environment (the ``dashboard`` extra)."""
    here = Path(sys.executable).parent / "optuna-dashboard"
    found = str(here) if here.exists() else shutil.which("optuna-dashboard")
    assert found, "optuna-dashboard is not installed: pip install -e '.[dev]'"
    return found


def get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200, (url, response.status)
        return response.read()


def get_json(url: str) -> Any:
    return json.loads(get(url))


@dataclass(frozen=True)
class Dashboard:
    base: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen
    log: Path


@contextmanager
def running_dashboard(tiny: TinyStudy, log_path: Path, startup_s: float = 60) -> Iterator[Dashboard]:
    """A real ``optuna-dashboard`` server on loopback for the tiny study (with its artifacts); stopped after."""
    port = free_port()
    argv = dashboard_argv(tiny.url, tiny.artifacts, host="127.0.0.1", port=port)
    argv[0] = dashboard_executable()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            assert proc.poll() is None, f"optuna-dashboard exited {proc.returncode}: {log_path.read_text()[-2000:]}"
            try:
                get(f"{base}/api/meta", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, f"optuna-dashboard did not answer in {startup_s} s"
                time.sleep(0.2)
        yield Dashboard(base, proc, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
