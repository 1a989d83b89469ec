"""The CPU kind runs record, and `train`'s note when an exported trial ran on another kind.

Runs reproduce bit for bit only where the libraries pick the same kernels, and the processor's name does not tell
that: on 2026-12-07 an AMD EPYC with AVX-512 trained an exported trial of an AMD EPYC with AVX2 only to 2,371.1
against its stored 2,725.9 (README, "Exact reproduction on another CPU"), both CPUs calling themselves ``AMD EPYC``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml

from vmpo_tune import provenance, records

from .search_helpers import LONG_TOY, ROOT, cli, interrupt_search, load, write_study
from .test_simulator import searched

PLAIN_KERNELS = {"ATEN_CPU_CAPABILITY": "default"}
"""PyTorch told to run its plain kernels: on a CPU with AVX2 or better, another kind of CPU as runs record it."""


def _flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return set(next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags")), "").split())


def test_the_kind_is_the_name_pytorchs_instruction_set_and_the_matrix_flags_present():
    name, isa = provenance.cpu_kind().split("; ")
    assert name == provenance.cpu_model()
    capability, *flags = isa.split(" ")
    assert capability == torch.backends.cpu.get_cpu_capability()
    assert flags == [f for f in provenance.MATRIX_FLAGS if f in _flags()]  # in MATRIX_FLAGS' order, only those


def test_the_kind_follows_the_instruction_set_pytorch_is_told_to_run():
    """ATEN_CPU_CAPABILITY=default makes PyTorch run its plain kernels: other bits, so another kind."""
    code = "from vmpo_tune import provenance; print(provenance.cpu_kind())"
    env = {"PATH": "/usr/bin:/bin", **PLAIN_KERNELS}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    name, isa = out.stdout.strip().split("; ")
    assert name == provenance.cpu_model() and isa.split(" ")[0] == "DEFAULT"
    assert out.stdout.strip() != provenance.cpu_kind() or torch.backends.cpu.get_cpu_capability() == "DEFAULT"


def test_other_cpu_says_nothing_for_this_kind_or_nothing_recorded():
    assert provenance.other_cpu(provenance.cpu_model(), provenance.cpu_kind()) is None
    assert provenance.other_cpu(None, None) is None


def test_other_cpu_names_both_kinds_when_they_differ():
    said = provenance.other_cpu("AMD EPYC", "AMD EPYC; AVX2")
    assert said == f"ran on a CPU of another kind (AMD EPYC; AVX2; this one: {provenance.cpu_kind()})"


def test_other_cpu_for_runs_that_recorded_only_a_name():
    """Runs stored before the kind was recorded: another name differs; the same name cannot tell."""
    said = provenance.other_cpu("Some Other CPU", None)
    assert said == f"ran on another CPU (Some Other CPU; this one: {provenance.cpu_kind()})"
    said = provenance.other_cpu(provenance.cpu_model(), None)
    assert said is not None and "not its instruction set" in said and provenance.cpu_kind() in said


def test_trials_record_the_kind_and_train_notes_a_trial_of_another_kind(tmp_path):
    study = searched(tmp_path)
    assert study.trials[0].user_attrs["provenance"]["cpu_kind"] == provenance.cpu_kind()
    proc = cli("vmpo_tune.export", "--study", "toy", "--run-dir", "run", "--out", "best.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert doc["runs"][0]["trial_provenance"]["cpu_kind"] == provenance.cpu_kind()
    proc = cli("vmpo_tune.train", "--config", "best.yaml", cwd=tmp_path)
    assert proc.returncode == 0 and "note:" not in proc.stdout  # this kind: reproduced, nothing to say
    doc["runs"][0]["trial_provenance"]["cpu_kind"] = "Some CPU; AVX2"
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = cli("vmpo_tune.train", "--config", "other.yaml", "--out", "again", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    note = next(line for line in proc.stdout.splitlines() if line.startswith("note:"))
    assert note.startswith("note: trial 0 ran on a CPU of another kind (Some CPU; AVX2; this one: ")
    assert f'its score may not be reproduced exactly (README, "{provenance.REPRODUCTION_HELP}"' in note
    assert f"\n### {provenance.REPRODUCTION_HELP}\n" in (ROOT / "README.md").read_text()  # the section it points to
    proc = cli("vmpo_tune.train", "--config", "other.yaml", "--fresh", "--out", "fresh", cwd=tmp_path)
    assert proc.returncode == 0 and "note:" not in proc.stdout  # other seeds: nothing to reproduce


def test_a_trial_resumed_on_another_kind_of_cpu_goes_on_and_records_that_it_is_not_exact(tmp_path):
    """Interrupted on this CPU, resumed with PyTorch on its plain kernels: the retry continues from the checkpoint
    (nothing is thrown away), warns, and records ``resume_exact: false``, so export and train say its score will
    not be reproduced. Resumed on the same kind, the same trial records true (test_reliability)."""
    assert torch.backends.cpu.get_cpu_capability() != "DEFAULT", "this test needs a CPU with vector kernels"
    write_study(tmp_path, LONG_TOY)
    url = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    args = ("--study", "toy.yaml", "--out", "run", "--trials", "1")
    interrupt_search(url, args, tmp_path)
    done = cli("vmpo_tune.search", *args, cwd=tmp_path, env=PLAIN_KERNELS)
    assert done.returncode == 0, done.stderr
    first, retry = load(url).get_trials()
    assert first.user_attrs[records.PROVENANCE]["cpu_kind"] == provenance.cpu_kind()
    kind = retry.user_attrs[records.PROVENANCE]["cpu_kind"]
    assert kind.split("; ")[1].split(" ")[0] == "DEFAULT" and kind != provenance.cpu_kind()
    assert retry.user_attrs[records.RESUMED_FROM] >= 4_000 and retry.user_attrs[records.RESUME_EXACT] is False
    assert f"trial {retry.number} continues on a CPU of another kind ({kind})" in done.stderr


def test_same_kind_is_true_false_or_cannot_tell():
    name, kind = provenance.cpu_model(), provenance.cpu_kind()
    assert provenance.same_kind(name, kind) is True and provenance.same_kind("Other CPU", kind) is True
    assert provenance.same_kind(name, "Other CPU; AVX2") is False
    assert provenance.same_kind("Other CPU", None) is False  # another name is another kind
    assert provenance.same_kind(name, None) is None and provenance.same_kind(None, None) is None


def test_a_resumed_attempt_counts_as_exact_unless_its_record_names_another_kind(caplog):
    from vmpo_tune.search.runner import TrialRunner

    def attempt(**recorded):
        return SimpleNamespace(number=3, user_attrs={records.PROVENANCE: recorded} if recorded else {})

    here = {"cpu": provenance.cpu_model(), "cpu_kind": provenance.cpu_kind()}
    assert TrialRunner._same_cpu_kind(attempt(**here)) is True
    assert TrialRunner._same_cpu_kind(attempt(cpu=provenance.cpu_model())) is True  # only this name: cannot tell
    assert TrialRunner._same_cpu_kind(attempt()) is True  # nothing recorded
    assert caplog.records == []
    assert TrialRunner._same_cpu_kind(attempt(cpu="Other CPU")) is False  # recorded before kinds, another name
    assert TrialRunner._same_cpu_kind(attempt(cpu="Other CPU", cpu_kind="Other CPU; AVX2")) is False
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["trial 3 continues on a CPU of another kind"] * 2
    assert "than the attempt it resumes (Other CPU)" in caplog.records[0].getMessage()
