"""``scripts/slurm-search.sh`` against a real single-node Slurm (``bash scripts/slurm-local`` starts one from
Debian's packages): a job array of two tasks shares one PostgreSQL study's exact budget, and a task cancelled
mid-trial (Slurm's SIGTERM, as at a job's time limit) leaves its trial to be queued again, which the next
submission finishes, resumed from its checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from vmpo_tune import records

from .conftest import IN_CI
from .search_helpers import CALM, LONG_TOY, ROOT, running_with_values, wait_for, write_study

pytestmark = [pytest.mark.server, pytest.mark.slow]

SCRIPT = ROOT / "scripts" / "slurm-search.sh"


@pytest.fixture
def slurm():
    """The loopback Slurm answers; unreachable fails in CI and skips elsewhere."""
    up = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0
    if not up:
        message = "Slurm is not running here; start a single-node one: bash scripts/slurm-local"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def submit(folder: Path, storage: str, study: str, trials: int, array: str) -> str:
    """``sbatch`` the script as a user would, from ``folder``, one CPU per task (the script asks for 16): its id."""
    env = {
        **os.environ,
        "VMPO_TUNE_STORAGE": storage,
        "ARTIFACTS": str(folder / "artifacts"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # this environment's python
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        ["sbatch", "--parsable", f"--array={array}", "--cpus-per-task=1", f"--output={folder}/slurm-%A_%a.out",
         str(SCRIPT), study, str(trials)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def gone(job: str):
    def check():
        listed = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, timeout=30)
        forgotten = "invalid job id" in listed.stderr.lower()  # ended long enough ago for Slurm to drop it
        return forgotten or (listed.returncode == 0 and not listed.stdout.strip())

    check.__name__ = f"job {job} to leave the queue"
    return check


def trials_of(url: str) -> list:
    return optuna.load_study(study_name="toy", storage=url).get_trials(deepcopy=False)


def test_a_job_array_shares_one_exact_budget(tmp_path, pg_url, slurm):
    write_study(tmp_path, CALM)
    job = submit(tmp_path, pg_url, "toy.yaml", 6, "0-1")
    wait_for(gone(job), timeout=600, every=1.0)
    outputs = sorted(tmp_path.glob(f"slurm-{job}_*.out"))
    assert len(outputs) == 2, outputs
    trials = trials_of(pg_url)
    counts = records.budget_counts(trials)
    assert counts.finished == 6 and counts.running == 0 and counts.waiting == 0, counts
    for out in outputs:  # each task ran the search command and ended it normally
        text = out.read_text()
        assert "target 6" in text and "Traceback" not in text, text


def test_a_cancelled_task_leaves_its_trial_to_the_next_submission(tmp_path, pg_url, slurm):
    write_study(tmp_path, {**LONG_TOY, "total_steps": 8_000})
    first = submit(tmp_path, pg_url, "toy.yaml", 2, "0")
    victim = wait_for(running_with_values(pg_url, 1, min_values=2), timeout=300)[0]
    subprocess.run(["scancel", first], check=True, timeout=30)  # SIGTERM to the task, as at its time limit
    wait_for(gone(first), timeout=120, every=1.0)
    after_stop = trials_of(pg_url)
    assert not [t for t in after_stop if t.state == TrialState.RUNNING], "a stopped task left a RUNNING trial"
    second = submit(tmp_path, pg_url, "toy.yaml", 2, "0")
    wait_for(gone(second), timeout=600, every=1.0)
    trials = trials_of(pg_url)
    counts = records.budget_counts(trials)
    assert counts.finished == 2 and counts.running == 0 and counts.waiting == 0, counts
    retry = next(t for t in trials if t.system_attrs.get(records.RETRY_OF) == victim.number)
    assert retry.state == TrialState.COMPLETE
    # the retry resumed from the stopped attempt's checkpoint (the shared artifact folder), not from step 0
    assert retry.user_attrs.get(records.RESUMED_FROM), retry.user_attrs
