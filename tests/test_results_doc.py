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
            assert "simulator: mujoco" in text, name


def test_help_shows_each_studys_status():
    proc = cli("vmpo_tune.search", "--help", cwd=ROOT)
    assert proc.returncode == 0
    for name in STUDIES:
        status = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())["status"]
        assert status in " ".join(proc.stdout.split()), name


def test_every_shipped_study_names_the_strategy_the_benchmark_chose():
    """The study files' search strategy is the strategy benchmark's choice (benchmarks/search_efficiency.py's
    CHOSEN, TPE with one seed per trial on the final return), with a comment pointing at its table."""
    from benchmarks.search_efficiency import CHOSEN, STRATEGIES
    from vmpo_tune.search.spec import load_spec

    seeds, flags = STRATEGIES[CHOSEN]
    sampler = flags[flags.index("--sampler") + 1]
    for name in STUDIES:
        text = (ROOT / "studies" / f"{name}.yaml").read_text()
        if yaml.safe_load(text)["status"].startswith("benchmark"):  # the benchmark's own study: flags choose
            continue
        spec = load_spec(str(ROOT / "studies" / f"{name}.yaml"), check_env=False)
        assert (spec.search, spec.seeds_per_trial, spec.objective, spec.sampler["name"]) == (
            "standard",
            seeds,
            "final",
            sampler,
        ), name
        comment = text.split("\nsearch: standard")[0].rsplit("\n", 3)[-2:]
        assert "BENCHMARKS.md" in " ".join(comment) and "does tuning pay?" in " ".join(comment), name
