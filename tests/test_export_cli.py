"""python -m vmpo_tune.export as a user runs it: it never replaces a file unasked, checks where it writes
before it reads the study, and writes plain YAML (no anchors or aliases) that the run-file reader loads."""

from __future__ import annotations

import re

import pytest
import yaml

from vmpo_tune import records
from vmpo_tune.config import TrainConfig, VMPOConfig
from vmpo_tune.errors import UserError
from vmpo_tune.runfile import load_run

from .search_helpers import CALM, cli, load, write_study

ALIAS = re.compile(r"[&*]id\d+")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-trial search with a confirmation of its 2 best on 2 fresh seeds; returns its --out folder."""
    root = tmp_path_factory.mktemp("exported")
    write_study(root, CALM)
    proc = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "3",
        "--confirm-top",
        "2",
        "--confirm-seeds",
        "2",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    return root / "run"


def export(run_dir, *args, cwd):
    return cli("vmpo_tune.export", "--study", "toy", "--run-dir", str(run_dir), *args, cwd=cwd)


def test_export_keeps_an_existing_file_unless_forced(run_dir, tmp_path):
    first = export(run_dir, "--top", "2", "--out", "toy-best.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "toy-best.yaml"
    before = path.read_bytes()
    assert len(yaml.safe_load(before)["runs"]) == 2
    again = export(run_dir, cwd=tmp_path)  # the default output file is the same one
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and again.stdout == ""
    assert again.stderr.startswith("error: toy-best.yaml already exists")
    assert "--force" in again.stderr and "--out" in again.stderr
    assert path.read_bytes() == before
    forced = export(run_dir, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "wrote toy-best.yaml: 1 run(s)" in forced.stdout
    assert len(yaml.safe_load(path.read_text())["runs"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy-best.yaml"]  # no temporary file left


def test_export_checks_its_output_before_it_opens_the_study(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "kept.yaml").write_text("mine\n")
    cases = {
        "notes.txt/best.yaml": "notes.txt is a file, not a folder",
        "notes.txt/deeper/best.yaml": "notes.txt is a file, not a folder",
        "folder": "is a folder",
        "kept.yaml": "kept.yaml already exists",
    }
    for out, message in cases.items():
        # the study does not exist: the output's problem is found first, and nothing is created
        proc = cli("vmpo_tune.export", "--study", "nothing", "--out", out, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (out, proc.stderr)
        assert message in proc.stderr and "--out" in proc.stderr, (out, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "kept.yaml", "notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine\n" and (tmp_path / "kept.yaml").read_text() == "mine\n"
    assert not any((tmp_path / "folder").iterdir())


def test_exported_yaml_is_plain_and_reads_back_into_the_same_configs(run_dir, tmp_path):
    proc = export(run_dir, "--top", "2", "--out", "new/sub/best.yaml", cwd=tmp_path)  # creates its folders
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "new" / "sub" / "best.yaml"
    text = path.read_text()
    assert not ALIAS.findall(text) and "&id" not in text and "*id" not in text
    assert "resume_exact" not in text  # no trial was resumed: nothing to say, and no null
    doc = yaml.safe_load(text)
    assert list(doc) == [
        "format",
        "study",
        "description",
        "objective",
        "ranked_by",
        "exported_at",
        "storage",
        "tuning_seeds",
        "test_seeds",
        "budget",
        "search_space",
        "confirmation",
        "provenance",
        "runs",
    ]
    assert len(doc["runs"]) == 2 and doc["ranked_by"].startswith("IQM")
    for run, stats in zip(doc["runs"], doc["confirmation"]):  # repeated lists are written out in full
        assert run["confirmed"]["seeds"] == stats["seeds"] == doc["test_seeds"]
        assert run["confirmed"]["iqm_ci"] == stats["iqm_ci"] and run["confirmed"]["returns"] == stats["returns"]
    study = load(f"sqlite:///{run_dir / 'study.db'}")
    for rank, run in enumerate(doc["runs"], 1):
        loaded = load_run(path, rank)
        assert loaded.resume_exact is None and loaded.config.total_steps == run["total_steps"]
        config = study.trials[run["trial"]].user_attrs[records.CONFIG]
        assert loaded.config.agent == VMPOConfig.from_dict(config["agent"])
        assert loaded.config.train == TrainConfig.from_dict(config["train"])


def test_run_files_with_resume_exact_null_still_load(run_dir, tmp_path):
    proc = export(run_dir, "--out", "best.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load((tmp_path / "best.yaml").read_text())
    for value, expected in ((None, None), (False, False), (True, True)):  # null: as written before
        doc["runs"][0]["resume_exact"] = value
        (tmp_path / "old.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        assert load_run(tmp_path / "old.yaml").resume_exact is expected
    doc["runs"][0]["resume_exact"] = "maybe"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(UserError, match=r"bad\.yaml: runs\[0\]: resume_exact: must be true or false"):
        load_run(tmp_path / "bad.yaml")
    train = cli("vmpo_tune.train", "--config", "bad.yaml", "--out", "t", cwd=tmp_path)  # refused before training
    assert train.returncode == 2 and train.stderr.count("\n") == 1 and "resume_exact" in train.stderr
