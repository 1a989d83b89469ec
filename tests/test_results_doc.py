"""RESULTS.md has a section for every shipped study, and a study without a confirmation says so everywhere."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace

import optuna
import pytest
import yaml

from benchmarks.results_table import PUBLISHED
from vmpo_tune.config import VMPOConfig

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
            # PPO on the same seeds, or else the published numbers, marked as such (issue 18, item 5)
            env_id = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())["env_id"]
            if env_id in PUBLISHED:
                assert "| SB3 PPO" in text or "Published numbers, not on these seeds (ANCHORS.md" in text, name
            if env_id.startswith("dm_control/"):  # "learns well above a random policy" (issue 18), on the same seeds
                assert "| uniform random actions (no learning) |" in text, name


def test_every_published_number_results_md_quotes_is_in_anchors_md():
    """RESULTS.md cites the published numbers as "ANCHORS.md": each one must be there, in the same row or paragraph
    as its algorithm and source."""
    anchors = (ROOT / "ANCHORS.md").read_text()
    blocks = [" ".join(b.split()) for b in re.split(r"\n\s*\n", anchors)] + anchors.splitlines()
    for env_id, published in PUBLISHED.items():
        for what, value in published:
            algorithm, source = what.split(", ")[0], what.split(", ")[1].split(" ")[0]
            numbers = [n.replace(",", "") for n in re.findall(r"[\d,]+", value) if n.strip(",")]
            assert any(
                algorithm in b and source in b and all(n in b.replace(",", "") for n in numbers) for b in blocks
            ), (env_id, what, value)


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


def test_the_hopper_table_is_rendered_from_the_kept_confirmation_with_its_new_and_previous_default(tmp_path):
    """RESULTS.md's hopper rows re-render from results/ (the from-shipped arm's storage); the candidate the study
    file now ships is named so, the confirmation's default is the previous one, and a label that is not a candidate
    is a one-line error (exit 2) that writes nothing."""
    import shutil

    from vmpo_tune.search.spec import default_params, load_spec, params_to_config

    db = tmp_path / "from-shipped.db"
    shutil.copy(ROOT / "results" / "search-efficiency-hopper" / "from-shipped.db", db)
    out = tmp_path / "RESULTS.md"
    common = ["--study", "hopper", "--storage", f"sqlite:///{db}", "--out", str(out), "--machine", "m"]
    common += ["--search-command", "s", "--ppo", str(ROOT / "results" / "ppo" / "hopper-300k.json")]
    common += ["--ppo-command", "results/ppo/hopper-300k.json (2026-11-23, device machine)"]
    bad = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "results_table.py"), *common, "--default-now", "trial 99"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "--default-now 'trial 99' is not a confirmed candidate" in bad.stderr
    assert not out.exists()
    ok = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "results_table.py"), *common, "--default-now", "trial 17"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    rendered = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    kept = [line for line in section("hopper").splitlines() if line.startswith("| ")]
    assert rendered == kept  # the table in RESULTS.md is what the kept storage gives
    assert rendered[1].startswith("| trial 17 (confirmed winner, the study default now) | **2,595**")
    assert "trial 17's exact values, which `python -m vmpo_tune.adopt --study hopper` writes" in out.read_text()
    previous = next(line for line in rendered if line.startswith("| default (the previous study default) |"))
    # the README's Results paragraph quotes the same two rows
    readme = " ".join((ROOT / "README.md").read_text().split())
    for line, phrase in ((rendered[1], "an IQM of {} [95% CI {} to {}]"), (previous, "scored {} [{} to {}]")):
        iqm, low, high = re.search(r"\*\*([\d,]+)\*\* \[([\d,]+), ([\d,]+)\]", line).groups()
        assert phrase.format(iqm, low, high) in readme, phrase.format(iqm, low, high)
    # the study file's default is exactly the configuration the table confirmed, but for the precision of its
    # update's matrix products and its policy's width (bfloat16 and 2 x 128 since 2026-12-03: RESULTS.md's precision
    # and policy-width sections measured those changes) and its acting (numpy since 2026-12-07: the acting section)
    spec = load_spec("hopper")
    shipped = params_to_config(spec, default_params(spec))
    study = optuna.load_study(study_name="hopper/confirm", storage=f"sqlite:///{db}")
    unit = next(t for t in study.trials if t.user_attrs.get("candidate") == "trial 17")
    stored = unit.user_attrs["config"]
    assert "matmul_precision" not in stored["agent"]  # stored before the option: float32, its default
    then = replace(shipped.agent, matmul_precision="highest", policy_layer_sizes=(256, 256), acting="torch")
    assert then == VMPOConfig.from_dict(stored["agent"])
    assert shipped.train.num_envs == stored["train"]["num_envs"] and shipped.total_steps == stored["total_steps"]


# the two held-out checks: their kept storage, their RESULTS.md heading, and what the shipped default's agent differs
# in from what ran (the first ran before the default's products became bfloat16 and its policy 2 x 128; both before
# acting: numpy)
HELD_OUT_CHECKS = [
    (
        "hopper.db",
        "### hopper: today's default and the previous one on held-out seeds 2000-2009",
        {"matmul_precision": "highest", "policy_layer_sizes": (256, 256), "acting": "torch"},
    ),
    (
        "hopper-2026-12-07.db",
        "### hopper: the same check with the default as it ships (2026-12-07)",
        {"acting": "torch"},
    ),
]


@pytest.mark.parametrize("kept, heading, then", HELD_OUT_CHECKS)
def test_the_hopper_held_out_rows_are_the_kept_storages_and_today_s_default_is_what_ran(tmp_path, kept, heading, then):
    """RESULTS.md's held-out checks of the hopper default (seeds 2000-2009) re-render from their storages kept in
    results/heldout/: trial 0 is the study file's default (as it shipped then), trial 1 the previous default queued
    from the kept file; the README quotes the same numbers."""
    from vmpo_tune.search.spec import default_params, load_spec, params_to_config

    db = ROOT / "results" / "heldout" / kept
    out = tmp_path / "R.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "results_table.py"), "--study", "hopper"]
        + ["--storage", f"sqlite:///{db}", "--out", str(out), "--machine", "m", "--search-command", "s"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "test seeds 2000-2009" in out.read_text()
    rendered = {
        line.split(" | ")[0]: line.split(" | ")[1:6] for line in out.read_text().splitlines() if "| trial" in line
    }
    held_out = RESULTS.split(heading)[1]
    rows = [line.split(" | ")[1:6] for line in held_out.split("\n\n", 3)[2].splitlines()[2:]]
    assert rows == [rendered["| trial 0 (default) (confirmed winner, study default)"], rendered["| trial 1"]]
    readme = " ".join((ROOT / "README.md").read_text().split())
    for cells in rows:
        iqm, low, high = re.search(r"\*\*([\d,]+)\*\* \[([\d,]+), ([\d,]+)\]", cells[0]).groups()
        assert f"{iqm} [{low} to {high}]" in readme
    study = optuna.load_study(study_name="hopper", storage=f"sqlite:///{db}")
    spec = load_spec("hopper")
    shipped = params_to_config(spec, default_params(spec))
    assert VMPOConfig.from_dict(study.trials[0].user_attrs["config"]["agent"]) == replace(shipped.agent, **then)
    queued = yaml.safe_load((ROOT / "results" / "heldout" / "hopper-previous-default.yaml").read_text())
    ran = {**study.trials[1].user_attrs["config"]["agent"], **study.trials[1].user_attrs["config"]["train"]}
    assert {k: ran[k] for k in queued} == queued  # every value of the previous default, exactly as the file has it
    previous = VMPOConfig.from_dict(study.trials[1].user_attrs["config"]["agent"])
    fixed = {"policy_layer_sizes": shipped.agent.policy_layer_sizes, "matmul_precision": shipped.agent.matmul_precision}
    for key, value in {**fixed, **then}.items():
        assert getattr(previous, key) == value  # the study file's fixed options of the day, for both rows


def test_the_readme_names_exactly_the_studies_without_a_confirmation():
    readme = " ".join((ROOT / "README.md").read_text().split())
    listed = re.search(r"without a confirmation yet \(([^)]*)\)", readme)
    assert listed, "README's Results paragraph no longer lists the unconfirmed studies"
    unconfirmed = {name for name in STUDIES if "| configuration | IQM [95% CI]" not in section(name)}
    assert set(re.findall(r"`([\w-]+)`", listed.group(1))) == unconfirmed


def test_the_hopper_untuned_table_is_rendered_from_the_kept_strategy_benchmark_arm(tmp_path):
    import shutil

    out, db = tmp_path / "RESULTS.md", tmp_path / "tpe-1seed-1.db"
    shutil.copy(ROOT / "results" / "search-efficiency-hopper" / "tpe-1seed-1.db", db)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "results_table.py"), "--study", "hopper-untuned"]
        + ["--storage", f"sqlite:///{db}", "--out", str(out), "--machine", "m", "--search-command", "s"]
        + ["--ppo", str(ROOT / "results" / "ppo" / "hopper-300k.json"), "--ppo-command", "p"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [line.rsplit(" | ", 1)[0] for line in out.read_text().splitlines() if line.startswith("| ")]
    kept = [line.rsplit(" | ", 1)[0] for line in section("hopper-untuned").splitlines() if line.startswith("| ")]
    assert rendered == kept and rendered[1].startswith("| trial 20 (confirmed winner) | **1,951**")


@pytest.mark.parametrize("name", ["hopper-1m", "halfcheetah", "walker2d", "walker-walk"])
def test_the_readme_quotes_the_1m_confirmations_as_results_md_has_them(name):
    readme = " ".join((ROOT / "README.md").read_text().split())
    row = next(line for line in section(name).splitlines() if "(confirmed winner" in line)
    iqm, low, high = re.search(r"\*\*([\d,]+)\*\* \[([\d,]+), ([\d,]+)\]", row).groups()
    lowest, highest = re.search(r"\| ([\d,]+) to ([\d,]+) \|", row).groups()
    assert f"IQM {iqm} [{low} to {high}], every seed between {lowest} and {highest}" in readme, name


def test_a_campaign_sections_reproduce_column_names_the_storage_its_confirmation_used(tmp_path):
    """The reproduce column of a study the campaign confirmed is the confirmation as it ran (storage and run folder
    included), not a bare ``confirm`` that would open an empty default storage."""
    import shutil

    from benchmarks.study_results import QUEUE

    for name in QUEUE:
        cells = [line.rsplit(" | ", 1)[1] for line in section(name).splitlines() if line.startswith("| trial")]
        for cell in cells:
            assert f"--storage sqlite:///runs/study-results/{name}.db" in cell and "--run-dir" in cell, (name, cell)
    db = tmp_path / "halfcheetah.db"
    shutil.copy(ROOT / "results" / "studies" / "halfcheetah.db", db)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "results_table.py"), "--study", "halfcheetah"]
        + ["--storage", f"sqlite:///{db}", "--out", str(tmp_path / "R.md"), "--machine", "m", "--search-command", "s"]
        + ["--confirm-command", "python -m vmpo_tune.confirm --study halfcheetah --storage X"]
        + ["--held-out-command", "python -m vmpo_tune.confirm --study halfcheetah --held-out --storage X"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    confirmed, checked = (tmp_path / "R.md").read_text().split("Held-out check:")  # halfcheetah has both tables
    for part, command in ((confirmed, "--storage X"), (checked, "--held-out --storage X")):
        rows = [line for line in part.splitlines() if line.startswith("| trial")]
        assert rows and all(
            r.endswith(f"| `python -m vmpo_tune.confirm --study halfcheetah {command}` |") for r in rows
        )


@pytest.mark.parametrize(
    ("study", "candidates", "start"),
    [
        (
            "hopper-fast",
            [["8", "2 x 256"]] * 3,
            "| trial 0 (default) (the `hopper` default at m_steps 8) | 8 | 2 x 256 | 1933 ",
        ),
        (
            "hopper-small",
            [["16", "2 x 128"], ["16", "2 x 128"], ["32", "2 x 128"]],
            "| trial 0 (default) (the `hopper` default with 2 x 128 layers) | 16 | 2 x 128 | 2250 ",
        ),
    ],
)
def test_benchmarks_cheaper_arm_tables_re_render_from_the_kept_storages(study, candidates, start):
    """BENCHMARKS.md's tables of the cheaper arms (issue 16) are what the kept storages give: each candidate set
    against the `hopper` default (m_steps 16, 2 x 256) on the same test seeds."""
    from benchmarks.search_efficiency import CHEAPER, FROM_SHIPPED, arms
    from benchmarks.search_efficiency_table import cheaper_section, load_arm

    by_name = {arm.name: arm for arm in arms(2)}
    cheaper = next(c for c in CHEAPER if c.study == study)
    rendered = cheaper_section(cheaper, load_arm(by_name[cheaper.arm]), load_arm(by_name[FROM_SHIPPED]))
    rows = [line for line in rendered if line.startswith("| ")]
    benchmarks = (ROOT / "BENCHMARKS.md").read_text().splitlines()
    assert all(row in benchmarks for row in rows)
    assert rows[1].startswith("| `hopper` default (trial 17 of `from-shipped`) | 16 | 2 x 256 | 2595 ")
    # the candidates' m_steps and networks, read from the runs' configurations
    assert [row.split(" | ")[1:3] for row in rows[2:]] == candidates
    assert rows[2].startswith(start)


def test_a_cheaper_arm_study_before_its_confirmation_names_the_campaign_command(tmp_path, monkeypatch):
    """While a cheaper arm runs, its study's pending section gives the campaign's resumable command and the storage it
    keeps (not a plain search, whose storage the campaign would not read)."""
    from benchmarks import results_table

    out = tmp_path / "RESULTS.md"
    monkeypatch.setattr(results_table, "RESULTS", out)
    results_table.pending("hopper-small")
    text = out.read_text()
    assert "**No confirmation has been run for this study yet**" in text
    assert "`python benchmarks/search_efficiency.py run --arms small-from-shipped`" in text
    assert "--storage sqlite:///results/search-efficiency-hopper/small-from-shipped.db" in text
    assert "python -m vmpo_tune.search --study hopper-small" not in text
