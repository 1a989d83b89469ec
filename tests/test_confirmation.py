"""The confirmation stage end to end: units through the same workers and storage, statistics, and the
confirmed winner in the export, the report and the dashboard note."""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from vmpo_tune import records
from vmpo_tune.search.confirmation import TEST_SEED_OFFSET

from .search_helpers import CALM, LONG_TOY, cli, load, running_with_values, spawn, wait_for, write_study

FAST_HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")


def units(url: str, name: str = "toy") -> list:
    return load(url, records.confirm_study_name(name)).get_trials()


def pairs(trials) -> list[tuple[str, int]]:
    retried = records.retried_numbers(trials)
    return sorted(
        (t.user_attrs[records.CANDIDATE], records.read_seeds(t)[0]) for t in trials if t.number not in retried
    )


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    root = tmp_path_factory.mktemp("confirmed")
    write_study(root, CALM)
    proc = cli(
        "vmpo_tune.search",
        "--study",
        "toy.yaml",
        "--out",
        "run",
        "--trials",
        "4",
        "--confirm-top",
        "2",
        "--confirm-seeds",
        "3",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    return root, proc


def test_search_then_confirm_ranks_candidates_on_fresh_seeds(confirmed):
    root, proc = confirmed
    url = f"sqlite:///{root / 'run' / 'study.db'}"
    assert "IQM [95% CI]" in proc.stdout and "P(> default)" in proc.stdout and "search - IQM" in proc.stdout
    study = load(url)
    trials = units(url)
    plan = records.read_confirm_plan(load(url, records.confirm_study_name("toy")))
    seeds = [TEST_SEED_OFFSET, TEST_SEED_OFFSET + 1, TEST_SEED_OFFSET + 2]
    assert list(plan.test_seeds) == seeds and not set(seeds) & set(records.read_study_info(study).tuning_seeds)
    labels = [c.label for c in plan.candidates]
    assert len(labels) in (2, 3) and plan.baseline is not None  # the default, always
    # every (candidate, seed) unit exactly once, all complete
    assert pairs(trials) == sorted((label, s) for label in labels for s in seeds)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.user_attrs[records.SEED_BEST_RETURNS] for t in trials)  # best evaluation stored beside the final
    ranked = records.read_confirmation(study)
    assert [c.label for c in ranked] and sorted(c.label for c in ranked) == sorted(labels)
    iqms = [c.iqm for c in ranked]
    assert iqms == sorted(iqms, reverse=True)
    for c in ranked:
        mine = sorted(t.value for t in trials if t.user_attrs[records.CANDIDATE] == c.label)
        assert sorted(c.returns) == mine and c.iqm_ci[0] <= c.iqm <= c.iqm_ci[1]
    # the dashboard note names the confirmed winner and its interval
    from optuna_dashboard import get_note

    note = get_note(study)
    assert f"Confirmed winner: {ranked[0].label}" in note and "95% CI" in note


def test_a_rerun_adds_nothing_and_more_seeds_add_only_the_new_units(confirmed):
    root, _ = confirmed
    url = f"sqlite:///{root / 'run' / 'study.db'}"
    before = pairs(units(url))
    again = cli("vmpo_tune.confirm", "--study", "toy", "--top", "2", "--seeds", "3", "--run-dir", "run", cwd=root)
    assert again.returncode == 0, again.stderr
    assert pairs(units(url)) == before and "0 new" in again.stderr
    wrong = cli("vmpo_tune.confirm", "--study", "toy", "--total-steps", "256", "--run-dir", "run", cwd=root)
    assert wrong.returncode == 2 and "--total-steps 512" in wrong.stderr and wrong.stderr.count("\n") == 1
    assert pairs(units(url)) == before  # refused before anything changed


def test_export_report_and_train_use_the_confirmed_winner(confirmed):
    root, _ = confirmed
    url = f"sqlite:///{root / 'run' / 'study.db'}"
    study = load(url)
    winner = records.read_confirmation(study)[0]
    proc = cli("vmpo_tune.export", "--study", "toy", "--run-dir", "run", "--top", "2", "--out", "c.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert f"confirmed best {winner.label}" in proc.stdout
    doc = yaml.safe_load((root / "c.yaml").read_text())
    assert doc["ranked_by"].startswith("IQM") and doc["runs"][0]["candidate"] == winner.label
    assert doc["runs"][0]["confirmed"]["iqm"] == winner.iqm and doc["test_seeds"] == winner.seeds
    assert doc["tuning_seeds"] == [0] and doc["search_space"] and doc["budget"]["search_trials"] == 4
    assert doc["budget"]["confirmation_units"] == len(units(url)) and doc["budget"]["search_cpu_hours"] > 0
    by_search = cli(
        "vmpo_tune.export", "--study", "toy", "--run-dir", "run", "--by", "search", "--out", "s.yaml", cwd=root
    )
    assert by_search.returncode == 0, by_search.stderr
    assert yaml.safe_load((root / "s.yaml").read_text())["runs"][0]["trial"] == study.best_trial.number
    # train --fresh keeps working on the exported file, and never reuses a tuning or test seed
    train = cli("vmpo_tune.train", "--config", "c.yaml", "--seeds", "1", "--fresh", "--out", "t", cwd=root)
    assert train.returncode == 0, train.stderr
    fresh = yaml.safe_load((root / "t" / "results.yaml").read_text())["seeds"]
    assert fresh == [max(winner.seeds) + 1]
    again = cli("vmpo_tune.train", "--config", "c.yaml", "--seeds", "1", "--fresh", "--out", "t", cwd=root)
    assert again.returncode == 0 and (root / "t" / "results-2.yaml").exists()  # the first results stay
    report = cli("analysis.report", "--study", "toy", "--run-dir", "run", "--out", "r.html", cwd=root)
    assert report.returncode == 0, report.stderr
    html = (root / "r.html").read_text()
    for title in (
        "Confirmation on fresh seeds",
        "Confirmed IQM per candidate",
        "Return on each test seed",
        "Search score vs confirmed IQM",
        f"Confirmed winner: {winner.label}",
    ):
        assert title in html, title


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
@pytest.mark.slow
def test_killing_a_worker_during_confirmation_loses_no_unit_and_runs_none_twice(tmp_path, backend, request):
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    study = {**LONG_TOY, "total_steps": 12_000, "evaluation": {"interval": 1_000, "episodes": 1}}
    write_study(tmp_path, study)
    base = ("--study", "toy", "--storage", url)
    search = cli("vmpo_tune.search", *base[:1], "toy.yaml", *base[2:], "--out", "run", "--trials", "2", cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    args = (*base, "--run-dir", "run", "--top", "1", "--seeds", "2", "--workers", "2", *FAST_HEARTBEAT)
    proc = spawn("vmpo_tune.confirm", *args, cwd=tmp_path)
    confirm_name = records.confirm_study_name("toy")
    try:
        running = wait_for(running_with_values(url, 1, min_values=3, name=confirm_name), timeout=180)
        victim = running[0].user_attrs[records.PROVENANCE]["pid"]
        assert victim != proc.pid  # a worker process of the command, not the command itself
        os.kill(victim, signal.SIGKILL)
        code = proc.wait(timeout=300)
    finally:
        proc.kill()
    log = (tmp_path / "proc.out").read_text()
    assert code == 1 and "died" in log, log  # says so; the other worker finished the units meanwhile
    time.sleep(3.5)
    rerun = cli("vmpo_tune.confirm", *args[:-4], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    trials = load(url, confirm_name).get_trials()
    live = [t for t in trials if t.number not in records.retried_numbers(trials)]
    plan = records.read_confirm_plan(load(url, confirm_name))
    expected = sorted((c.label, s) for c in plan.candidates for s in plan.test_seeds)
    assert pairs(trials) == expected  # every pair once: none lost, none twice
    assert all(t.state == TrialState.COMPLETE for t in live)
    killed = next(t for t in trials if t.number == running[0].number)
    assert killed.state == TrialState.FAIL and "no heartbeat" in killed.user_attrs[records.FAIL_REASON]
    retry = next(t for t in trials if t.system_attrs.get(records.RETRY_OF) == killed.number)
    assert retry.user_attrs[records.RESUMED_FROM] > 0 and retry.user_attrs[records.RESUME_EXACT] is True
    assert optuna.load_study(study_name="toy", storage=url).user_attrs[records.CONFIRMATION]
