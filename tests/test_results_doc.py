"""RESULTS.md has a section for every shipped study, and a study without a confirmation says so everywhere."""

from __future__ import annotations

import re

import yaml

from .search_helpers import ROOT, cli

STUDIES = sorted(p.stem for p in (ROOT / "studies").glob("*.yaml"))
RESULTS = (ROOT / "RESULTS.md").read_text()


def section(name: str) -> str:
    match = re.search(
        rf"<!-- results-{re.escape(name)}:start -->(.*?)<!-- results-{re.escape(name)}:end -->", RESULTS, re.S
    )
    assert match, f"RESULTS.md has no section for studies/{name}.yaml (benchmarks/results_table.py writes it)"
    return match.group(1)


def test_every_study_has_a_results_section_that_matches_its_status():
    assert {"demo", "hopper", "hopper-1m", "halfcheetah", "walker2d", "walker-walk", "invertedpendulum"} <= set(STUDIES)
    for name in STUDIES:
        status = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())["status"]
        text = section(name)
        confirmed = "| configuration | IQM [95% CI]" in text
        if not confirmed:
            assert "No confirmation has been run for this study yet" in text and status in text, name
            assert not status.startswith("confirmed"), f"{name}: says confirmed but RESULTS.md has no table"
        else:
            assert "simulator: mujoco" in text or name == "hopper", name  # hopper's table predates the record


def test_help_shows_each_studys_status():
    proc = cli("vmpo_tune.search", "--help", cwd=ROOT)
    assert proc.returncode == 0
    for name in STUDIES:
        status = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())["status"]
        assert status in " ".join(proc.stdout.split()), name
