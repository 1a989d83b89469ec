"""confirm --held-out: the confirmed winner and the default trained again on seeds neither the search nor the
confirmation used, in a companion study of their own; export and the report show it, fresh seeds avoid it."""

from __future__ import annotations

import argparse

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from benchmarks import results_table
from vmpo_tune import records
from vmpo_tune.next_steps import held_out_pending
from vmpo_tune.search.confirmation import HELD_OUT_SEED_OFFSET, TEST_SEED_OFFSET
from vmpo_tune.stats import describe

from .search_helpers import CALM, TOY_STUDY, cli, load, write_study

# The default's policy_lr wrecks the policy (it dies at once: return 1 on every seed); the queued configuration
# survives the whole episode (50), so the confirmed winner is known in advance: trial 1, not the default.
WRECKED_DEFAULT = {
    **TOY_STUDY,
    "search_space": {
        "policy_lr": {"choices": [1.0e-4, 10.0], "default": 10.0},
        "epsilon_eta": TOY_STUDY["search_space"]["epsilon_eta"],
    },
}
RUN = ("--study", "toy", "--run-dir", "run")


def _companions(root) -> list[str]:
    return sorted(n for n in optuna.get_all_study_names(f"sqlite:///{root / 'run' / 'study.db'}") if n != "toy")


def _pairs(study: optuna.Study) -> list[tuple[str, int]]:
    return sorted((t.user_attrs[records.CANDIDATE], records.read_seeds(t)[0]) for t in study.get_trials())


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("held-out")
    write_study(root, WRECKED_DEFAULT)
    (root / "good.yaml").write_text("policy_lr: 1.0e-4\nepsilon_eta: 0.01\n")
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "2", "--enqueue", "good.yaml",
               cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return root


def test_the_winner_and_the_default_on_held_out_seeds(searched):
    root = searched
    url = f"sqlite:///{root / 'run' / 'study.db'}"
    early = cli("vmpo_tune.confirm", *RUN, "--held-out", "--seeds", "2", cwd=root)
    assert early.returncode == 2 and early.stderr.count("\n") == 1, early.stderr
    assert "no confirmation yet" in early.stderr and "python -m vmpo_tune.confirm --study toy" in early.stderr
    assert _companions(root) == []  # refused before anything was stored

    # confirmed at 256 env steps per unit, half the study's budget: the held-out check must use the same
    confirmed = cli("vmpo_tune.confirm", *RUN, "--top", "1", "--seeds", "2", "--total-steps", "256", cwd=root)
    assert confirmed.returncode == 0, confirmed.stderr
    assert "--held-out --seeds 10" in confirmed.stderr  # the next step it suggests
    winner = records.read_confirmation(load(url))[0]
    assert winner.label == "trial 1" and winner.source_trial == 1 and winner.returns == [50.0, 50.0]

    # another machine queues a third test seed: until it has run, the winner may still change
    confirm_study = load(url, records.confirm_study_name("toy"))
    unit = next(t for t in confirm_study.get_trials() if t.user_attrs[records.CANDIDATE] == "trial 1")
    confirm_study.enqueue_trial({}, user_attrs=records.unit_attrs("trial 1", 1, 1002, records.read_config(unit)))
    unfinished = cli("vmpo_tune.confirm", *RUN, "--held-out", cwd=root)
    assert unfinished.returncode == 2 and "1 unit(s) still open" in unfinished.stderr, unfinished.stderr
    finish = cli("vmpo_tune.confirm", *RUN, "--top", "1", "--seeds", "3", "--total-steps", "256", cwd=root)
    assert finish.returncode == 0, finish.stderr
    confirmed_seeds = [TEST_SEED_OFFSET + i for i in range(3)]
    assert records.read_confirmation(load(url))[0].seeds == confirmed_seeds

    both = cli("vmpo_tune.confirm", *RUN, "--held-out", "--top", "1", cwd=root)
    assert both.returncode == 2 and "drop --top" in both.stderr and both.stderr.count("\n") == 1
    budget = cli("vmpo_tune.confirm", *RUN, "--held-out", "--total-steps", "512", cwd=root)
    assert budget.returncode == 2 and "256 env steps" in budget.stderr and budget.stderr.count("\n") == 1
    clash = cli("vmpo_tune.confirm", *RUN, "--held-out", "--test-seed-start", str(TEST_SEED_OFFSET + 1), cwd=root)
    assert clash.returncode == 2 and clash.stderr.count("\n") == 1, clash.stderr
    assert "(1001, 1002)" in clash.stderr and f"e.g. {HELD_OUT_SEED_OFFSET}" in clash.stderr
    assert _companions(root) == ["toy/confirm"]

    proc = cli("vmpo_tune.confirm", *RUN, "--held-out", "--seeds", "3", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "held-out check" in proc.stdout and "'toy/held-out'" in proc.stdout
    seeds = [HELD_OUT_SEED_OFFSET + i for i in range(3)]
    assert f"held-out seeds {seeds}" in proc.stdout
    assert "--held-out" not in proc.stderr  # done: no longer suggested
    companion = load(url, records.held_out_study_name("toy"))
    assert _pairs(companion) == sorted((label, s) for label in ("default", "trial 1") for s in seeds)
    assert all(t.state == TrialState.COMPLETE for t in companion.get_trials())
    unit = next(t for t in companion.get_trials() if t.user_attrs[records.CANDIDATE] == "trial 1")
    assert records.read_config(unit).agent == records.read_config(load(url).trials[1]).agent
    assert records.read_config(unit).total_steps == 256  # the confirmation's budget, not the study's 512
    checked = {c.label: c for c in records.read_held_out(load(url))}
    assert checked["trial 1"].seeds == seeds and checked["trial 1"].returns == [50.0] * 3
    assert checked["default"].is_baseline and checked["default"].returns == [1.0] * 3
    assert checked["trial 1"].poi == 1.0  # 50 beats 1 on every pair of seeds
    # the confirmation itself is as it was: its units, seeds and ranking
    assert _pairs(load(url, records.confirm_study_name("toy"))) == [
        (label, s) for label in ("default", "trial 1") for s in confirmed_seeds
    ]
    assert records.read_confirmation(load(url))[0].seeds == confirmed_seeds

    again = cli("vmpo_tune.confirm", *RUN, "--held-out", "--seeds", "3", cwd=root)
    assert again.returncode == 0 and "0 new" in again.stderr and len(companion.get_trials()) == 6
    # a later confirmation may not take in the held-out seeds
    overlap = cli(
        "vmpo_tune.confirm", *RUN, "--top", "1", "--total-steps", "256", "--test-seed-start", "1995", cwd=root
    )
    assert overlap.returncode == 2 and "held-out check" in overlap.stderr and overlap.stderr.count("\n") == 1
    assert _pairs(load(url, records.confirm_study_name("toy")))[-1] == ("trial 1", confirmed_seeds[-1])

    export = cli("vmpo_tune.export", *RUN, "--out", "best.yaml", cwd=root)
    assert export.returncode == 0, export.stderr
    assert "IQM 50.0 (50.0 to 50.0) on 3 held-out seeds" in export.stdout
    doc = yaml.safe_load((root / "best.yaml").read_text())
    assert doc["held_out"]["test_seeds"] == seeds and doc["runs"][0]["held_out"]["returns"] == [50.0] * 3
    assert doc["budget"]["held_out_units"] == 6 and doc["budget"]["held_out_env_steps"] >= 6 * 256
    report = cli("analysis.report", *RUN, "--out", "r.html", cwd=root)
    assert report.returncode == 0, report.stderr
    html = (root / "r.html").read_text()
    assert "held-out IQM" in html and "50.0 [50.0, 50.0]; the default 1.0 [1.0, 1.0]" in html
    table = cli("benchmarks.results_table", "--study", "toy", "--storage", url, "--machine", "this machine",
                "--search-command", "s", "--out", "results.md", cwd=root)  # fmt: skip
    assert table.returncode == 0, table.stderr
    section = (root / "results.md").read_text().split("Held-out check:")[1]
    assert "| trial 1 | **50** [50, 50] |" in section and "| default (study default) | **1** [1, 1] |" in section
    assert "seeds 2000-2002" in section and "P(trial 1 > the default) on the held-out seeds: 1.00" in section
    assert "held-out check: 6 runs" in section
    fresh = cli("vmpo_tune.train", "--config", "best.yaml", "--seeds", "1", "--fresh", "--out", "t", cwd=root)
    assert fresh.returncode == 0, fresh.stderr
    assert yaml.safe_load((root / "t" / "results.yaml").read_text())["seeds"] == [seeds[-1] + 1]


def test_a_check_of_an_earlier_winner_leaves_the_new_one_to_check():
    study = optuna.create_study()

    def stats(label: str, source: int | None, returns: list[float]):
        return describe(label, [0, 1], returns, [1.0, 1.0], source_trial=source, is_baseline=source is None)

    default = stats("default", None, [1.0, 1.0])
    assert not held_out_pending(study)  # nothing confirmed
    records.write_confirmation(study, [stats("trial 1", 1, [50.0, 50.0]), default])
    assert held_out_pending(study)
    records.write_held_out(study, [stats("trial 1", 1, [40.0, 45.0]), default])
    assert not held_out_pending(study)
    records.write_confirmation(study, [stats("trial 2", 2, [60.0, 60.0]), stats("trial 1", 1, [50.0, 50.0]), default])
    assert held_out_pending(study)  # the winner changed: the check of trial 1 is not one of trial 2
    records.write_confirmation(study, [default, stats("trial 2", 2, [0.0, 0.0])])
    assert not held_out_pending(study)  # the default won: nothing to check


def test_a_results_table_names_the_current_winner_beside_an_earlier_rounds_check():
    def stats(label: str, source: int | None, returns: list[float]):
        return describe(label, [2000, 2001], returns, [1.0, 1.0], source_trial=source, is_baseline=source is None)

    # trial 1 (checked when it was the winner) ranks first on the held-out seeds; trial 2 is the winner now
    checked = [stats("trial 1", 1, [50.0, 50.0]), stats("trial 2", 2, [2.0, 0.0]), stats("default", None, [1.0, 1.0])]
    args = argparse.Namespace(held_out_command="c", default_now="trial 2")
    lines = "\n".join(results_table.held_out_lines(args, checked, "trial 2"))
    assert "| trial 1 (an earlier round's confirmed winner) |" in lines
    assert "| trial 2 (the study default now) |" in lines and "| default (the previous study default) |" in lines
    # P(trial 2 > the default): 2 beats both 1s, 0 neither: 2 of 4 pairs
    assert "P(trial 2 > the default) on the held-out seeds: 0.50" in lines and "P(trial 1" not in lines


def test_a_default_that_won_has_nothing_to_check(tmp_path):
    write_study(tmp_path, CALM)  # one trial, the default: the only candidate, so the confirmed winner
    search = cli("vmpo_tune.search", "--study", "toy.yaml", "--out", "run", "--trials", "1", "--confirm-top", "1",
                 "--confirm-seeds", "2", cwd=tmp_path)  # fmt: skip
    assert search.returncode == 0, search.stderr
    assert records.read_confirmation(load(f"sqlite:///{tmp_path / 'run' / 'study.db'}"))[0].is_baseline
    assert "--held-out" not in search.stderr and "vmpo_tune.adopt" not in search.stderr  # the default is the winner
    proc = cli("vmpo_tune.confirm", *RUN, "--held-out", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "is its default" in proc.stderr and _companions(tmp_path) == ["toy/confirm"]
    optuna.delete_study(study_name="toy/confirm", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    gone = cli("vmpo_tune.confirm", *RUN, "--held-out", cwd=tmp_path)  # the confirmation's units are gone
    assert gone.returncode == 2 and "no confirmation yet" in gone.stderr and _companions(tmp_path) == []
