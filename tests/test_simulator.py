"""One simulator release per study: recorded in the fingerprint, never mixed, and a clean install.

Studies made by the real CLI; another release is simulated by editing what the storage records
(a fingerprint, or an older study's trial provenance), since one environment holds one MuJoCo.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import optuna
import yaml

from vmpo_tune import records, simulator
from vmpo_tune.search.study import SIMULATOR, recorded_simulator

from .search_helpers import ROOT, cli, write_study

OTHER = "mujoco 2.3.7"


def load(tmp_path) -> optuna.Study:
    return optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")


def searched(tmp_path, *extra: str):
    write_study(tmp_path)
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "1", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return load(tmp_path)


def everything(study: optuna.Study):
    study = optuna.load_study(study_name=study.study_name, storage=study._storage)
    trials = [(t.number, t.state, dict(t.user_attrs), dict(t.system_attrs)) for t in study.trials]
    return dict(study.user_attrs), trials


def test_a_new_study_records_the_release_it_runs_on(tmp_path):
    study = searched(tmp_path)
    stored = json.loads(records.read_fingerprint(study))
    assert stored[SIMULATOR] == f"mujoco {simulator.mujoco_version()}" == simulator.describe()
    assert simulator.mujoco_version().split(".")[0] == "3"  # the pinned range (pyproject: mujoco>=3.17,<4)
    (trial,) = study.trials
    assert trial.user_attrs[records.PROVENANCE]["versions"]["mujoco"] == simulator.mujoco_version()


def test_a_study_of_another_release_is_refused_and_left_as_it_was(tmp_path):
    study = searched(tmp_path)
    stored = json.loads(records.read_fingerprint(study))
    records.write_fingerprint(study, json.dumps({**stored, SIMULATOR: OTHER}, sort_keys=True))
    stale = study.ask()  # a RUNNING trial whose worker died long ago: a search that went on would fail it
    study._storage.set_trial_system_attr(stale._trial_id, records.HEARTBEAT, time.time() - 3600)
    before = everything(study)
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "3", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"study 'toy' was run on {OTHER} and this environment has {simulator.describe()}" in proc.stderr
    assert "pip install 'mujoco==2.3.7'" in proc.stderr and "--study-name NAME" in proc.stderr
    assert everything(study) == before
    proc = cli("vmpo_tune.confirm", "--study", "toy", "--run-dir", "run", "--seeds", "2", cwd=tmp_path)
    assert proc.returncode == 2 and f"was run on {OTHER}" in proc.stderr and proc.stderr.count("\n") == 1
    assert everything(study)[1] == before[1]


def _as_stored_before_the_simulator_was_recorded(tmp_path, study: optuna.Study, trial_release: str) -> None:
    stored = json.loads(records.read_fingerprint(study))
    del stored[SIMULATOR]
    records.write_fingerprint(study, json.dumps(stored, sort_keys=True))
    db = sqlite3.connect(tmp_path / "run" / "study.db")  # a finished trial's attributes, as an old run wrote them
    with db:
        for trial in study.trials:
            provenance = trial.user_attrs[records.PROVENANCE]
            provenance["versions"]["mujoco"] = trial_release
            db.execute(
                "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = ?",
                (json.dumps(provenance), trial._trial_id, records.PROVENANCE),
            )
    db.close()


def test_an_older_study_is_judged_by_its_trials_provenance(tmp_path):
    study = searched(tmp_path)
    _as_stored_before_the_simulator_was_recorded(tmp_path, study, "2.3.7")
    assert recorded_simulator(load(tmp_path)) == OTHER
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "2", cwd=tmp_path)
    assert proc.returncode == 2 and f"was run on {OTHER}" in proc.stderr
    assert SIMULATOR not in json.loads(records.read_fingerprint(load(tmp_path))) and len(load(tmp_path).trials) == 1


def test_an_older_study_of_this_release_continues_and_records_it(tmp_path):
    study = searched(tmp_path)
    _as_stored_before_the_simulator_was_recorded(tmp_path, study, simulator.mujoco_version())
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path)
    assert json.loads(records.read_fingerprint(study))[SIMULATOR] == simulator.describe()
    assert len(study.trials) == 2


def test_mujoco_4_files_left_beside_3_are_refused_with_the_rebuild(tmp_path):
    leftover = tmp_path / "site" / "mujoco_core-4.0.0.dist-info"  # what installing 3.x over 4.0 leaves behind
    leftover.mkdir(parents=True)
    (leftover / "METADATA").write_text("Metadata-Version: 2.1\nName: mujoco-core\nVersion: 4.0.0\n")
    write_study(tmp_path)
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path / 'site'}"}
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "1", cwd=tmp_path, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "files left over from another release (mujoco-core 4.0.0)" in proc.stderr
    assert simulator.REBUILD in proc.stderr
    assert not (tmp_path / "run" / "study.db").exists()


def test_train_says_when_a_run_came_from_another_release(tmp_path):
    searched(tmp_path)
    proc = cli("vmpo_tune.export", "--study", "toy", "--run-dir", "run", "--out", "best.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load((tmp_path / "best.yaml").read_text())
    proc = cli("vmpo_tune.train", "--config", "best.yaml", cwd=tmp_path)
    assert proc.returncode == 0 and "note:" not in proc.stdout  # same release: reproduced, nothing to say
    doc["runs"][0]["trial_provenance"]["versions"]["mujoco"] = "2.3.7"
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = cli("vmpo_tune.train", "--config", "other.yaml", "--out", "again", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"ran on MuJoCo 2.3.7 and this environment has {simulator.mujoco_version()}" in proc.stdout


def _stderr_of(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_mujoco_warnings_go_through_logging_once_per_text():
    # Gymnasium's half_cheetah.xml makes MuJoCo 3.x warn (deprecated `settotalmass`) on every compile; MuJoCo
    # itself writes it to stderr each time, our environments log it once.
    xml = (
        "import gymnasium, pathlib\n"
        "XML = pathlib.Path(gymnasium.__file__).parent / 'envs/mujoco/assets/half_cheetah.xml'"
    )
    raw = _stderr_of(f"{xml}\nimport mujoco\nfor _ in range(3): mujoco.MjModel.from_xml_path(str(XML))")
    assert raw.count("settotalmass") == 3
    routed = _stderr_of(
        "import logging; logging.basicConfig(format='LOG %(name)s %(message)s')\n"
        "from vmpo_tune import envs\n"
        "for e in envs.make_eval_envs('HalfCheetah-v5', 3): e.close()\n"
        "envs.make_vector_env('HalfCheetah-v5', 2, seed=0).close()"
    )
    lines = [line for line in routed.splitlines() if "settotalmass" in line]
    assert len(lines) == 1, routed
    assert lines[0].startswith("LOG vmpo_tune.simulator MuJoCo: compiler attribute 'settotalmass' is deprecated")
