"""``python -m analysis.report`` on real stored studies, run like a user would (subprocesses)."""

from __future__ import annotations

import json
import math
import re

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState, create_trial
from plotly.offline import get_plotlyjs

from analysis import figures
from analysis.figures import MIN_TRIALS_FOR_IMPORTANCE, POI_AXIS_MARGIN
from analysis.report import NO_TRIALS, build_report, esc, heading
from analysis.tables import flatten, study_table
from vmpo_tune import records
from vmpo_tune.redaction import redact as redact_text
from vmpo_tune.stats import describe, rank

from .search_helpers import cli
from .study_fixture import (
    NAME,
    SECRET,
    SPACE,
    make_empty_study,
    make_unfinished_study,
    shared_tiny_report,
    shared_tiny_study,
    sqlite_url,
)

PLOT_DIV = 'class="plotly-graph-div"'
SCRIPT_SRC = re.compile(r"<script[^>]*\ssrc\s*=", re.IGNORECASE)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    return shared_tiny_study(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_report(tiny_study):
    return shared_tiny_report(tiny_study)


def report(cwd, *args):
    return cli("analysis.report", *args, cwd=cwd)


def nan_to_none(value):
    return None if isinstance(value, float) and math.isnan(value) else value


# ---------------------------------------------------------------------------- the tiny search


def test_report_is_one_offline_file_with_every_plot(tiny_study, tiny_report):
    proc = tiny_report.proc
    assert proc.returncode == 0, proc.stderr
    assert "wrote run/report.html" in proc.stdout and "Traceback" not in proc.stderr
    html = tiny_report.html.read_text(encoding="utf-8")
    assert get_plotlyjs() in html  # the whole plotly.js bundle, inline
    assert not SCRIPT_SRC.search(html)  # nothing fetched: no <script src=...> at all (no CDN)
    # history, parallel coordinates, slices, learning curves, wall time; importances and the contour are withheld
    # (a handful of complete trials), with the sentence why, once for each
    assert html.count(PLOT_DIV) == 5 and "Could not draw" not in html
    complete = sum(t.state == TrialState.COMPLETE for t in tiny_study.load().get_trials())
    assert html.count(f"need at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials; this study has {complete}.") == 2
    for title in (
        "Optimisation history",
        "Parameter importances",
        "Parallel coordinates",
        "Slice plots",
        "Contour",
        "Learning curves",
        "Wall time and throughput",
    ):
        assert f"<h2>{title}</h2>" in html
    assert f"Rests on {complete} complete trial(s)." in html  # each figure says what it rests on
    assert "No confirmation yet" in html and "max-width: 1400px" in html


def test_report_draws_every_learning_curve_by_state_and_the_best_config(tiny_study, tiny_report):
    html = tiny_report.html.read_text(encoding="utf-8")
    trials = tiny_study.load().get_trials()
    states = {t.state for t in trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= states
    for t in trials:
        label = f"trial {t.number} ({t.state.name})"
        assert (label in html) == bool(t.intermediate_values), label  # a curve exactly for trials with reports
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number))
    assert f"Best trial (search score) (trial {best.number})</h2>" in html
    config = yaml.safe_dump(best.user_attrs["config"], sort_keys=False, default_flow_style=False).rstrip()
    assert esc(config) in html and "policy_lr: 0.0001" in config
    assert "seed0_best.pt" in html and "seed0_evaluations.csv" in html  # the best trial's artifacts
    assert f"optuna-dashboard sqlite:///{tiny_study.db} --artifact-dir run/artifacts" in html


def test_trials_table_fits_the_page_with_the_params_in_one_wrapping_cell(tiny_study, tiny_report):
    html = tiny_report.html.read_text(encoding="utf-8")
    section = html[html.index("<h2>Trials</h2>") :]
    table = section[: section.index("</table>")]
    assert 'class="scroll"' not in section  # no frame of its own: the page scrolls, the table does not
    assert '<table class="trials all-trials">' in table
    assert "table.all-trials { width: 100%; }" in html  # as wide as the page, no wider
    assert "table.all-trials td.text { text-align: left; white-space: normal; overflow-wrap: anywhere; }" in html
    assert "<th>params</th>" in table and "<th>fail_reason</th>" in table and "<th>params.policy_lr</th>" not in table
    trials = tiny_study.load().get_trials()
    assert table.count('<td class="text params">') == len(trials)
    for t in trials:
        for name in t.params:
            assert f"{name}=" in table
    assert "reward_scale=1e+39" in table  # the infinite-reward trial's parameters, to 4 digits


def test_trials_csv_round_trips_what_the_study_holds(tiny_study, tiny_report):
    frame = pd.read_csv(tiny_report.csv).set_index("number")
    trials = tiny_study.load().get_trials()
    assert sorted(frame.index) == [t.number for t in trials]
    for column in (
        "state",
        "value",
        "params.policy_lr",
        "params.reward_scale",
        "params.epsilon_eta",
        "user_attrs.env_steps_per_s",
        "user_attrs.wall_time_s",
        "user_attrs.config.agent.policy_lr",
        "user_attrs.config.train.env_id",
        "user_attrs.config.total_steps",
        "user_attrs.seed_returns",
        "user_attrs.fail_reason",
        "user_attrs.provenance.versions.optuna",
        "last_step",
        "retried",
    ):
        assert column in frame.columns, column
    for t in trials:
        row = frame.loc[t.number]
        assert row["state"] == t.state.name and nan_to_none(row["value"]) == t.value
        assert {k: row[f"params.{k}"] for k in t.params} == t.params
        assert row["user_attrs.env_steps_per_s"] == t.user_attrs["env_steps_per_s"]
        assert row["user_attrs.config.agent.policy_lr"] == t.user_attrs["config"]["agent"]["policy_lr"]
        assert row["user_attrs.config.total_steps"] == 512 and row["n_reports"] == len(t.intermediate_values)
        assert nan_to_none(row["last_step"]) == max(t.intermediate_values, default=None)
        if t.state == TrialState.COMPLETE:
            assert json.loads(row["user_attrs.seed_returns"]) == t.user_attrs["seed_returns"]
        if t.state == TrialState.FAIL:
            assert "NaN or inf" in row["user_attrs.fail_reason"]


def test_parquet_copy_matches_the_csv(tiny_report):
    pytest.importorskip("pyarrow")
    csv = pd.read_csv(tiny_report.csv)
    parquet = pd.read_parquet(tiny_report.parquet)
    assert list(parquet.columns) == list(csv.columns)
    assert parquet["state"].tolist() == csv["state"].tolist()
    for column in ("number", "value", "params.policy_lr", "user_attrs.env_steps_per_s"):
        assert parquet[column].tolist() == pytest.approx(csv[column].tolist(), nan_ok=True), column


# ---------------------------------------------------------------------------- studies without results


def test_study_without_complete_trials_says_so(tmp_path):
    make_unfinished_study(tmp_path / "stalled.db")  # its FAIL trial's command holds a password
    proc = report(tmp_path, "--study", "stalled", "--storage", sqlite_url(tmp_path / "stalled.db"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    html = (tmp_path / "stalled-report.html").read_text(encoding="utf-8")  # default --out: no runs/stalled here
    assert '<p class="note">This study has no complete trials yet (2 trial(s): 0 complete, 1 pruned, 1 failed)' in html
    # where the importances and the contour would be, the threshold they wait for
    assert html.count(f"need at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials; this study has 0.") == 2
    assert html.count(PLOT_DIV) == 2  # the pruned trial's learning curve and the wall time; nothing else
    assert "trial 0 (PRUNED)" in html
    frame = pd.read_csv(tmp_path / "stalled-report-trials.csv")
    assert frame["state"].tolist() == ["PRUNED", "FAIL"] and frame["value"].isna().all()
    assert frame["last_intermediate"].tolist()[0] == 3.0
    assert frame["user_attrs.fail_reason"].tolist()[1] == "diverged: NaN or inf"
    command = frame["user_attrs.provenance.command"].tolist()[1]
    assert command == "search --storage postgresql://me:***@db/optuna"
    assert SECRET not in html and SECRET not in (tmp_path / "stalled-report-trials.csv").read_text()


def test_study_with_no_trials_says_so(tmp_path):
    make_empty_study(tmp_path / "empty.db")
    out = tmp_path / "out" / "empty.html"
    proc = report(tmp_path, "--study", "empty", "--storage", sqlite_url(tmp_path / "empty.db"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text(encoding="utf-8")
    assert f'<p class="note">{esc(NO_TRIALS)}</p>' in html and html.count(PLOT_DIV) == 0
    frame = pd.read_csv(tmp_path / "out" / "empty-trials.csv")
    assert len(frame) == 0 and {"number", "state", "value"} <= set(frame.columns)


def test_a_plot_that_cannot_be_drawn_becomes_a_note(tmp_path):
    """One complete trial: no importances (and so no contour), every other plot still drawn."""
    study = optuna.create_study(storage=sqlite_url(tmp_path / "one.db"), study_name="one", direction="maximize")
    study.add_trial(
        create_trial(
            params={"policy_lr": 1e-4, "epsilon_eta": 0.01},
            distributions=SPACE,
            value=7.5,
            intermediate_values={256: 5.0, 512: 7.5},
            user_attrs={"wall_time_s": 1.0},
        )
    )
    out = tmp_path / "one.html"
    written = build_report(study, sqlite_url(tmp_path / "one.db"), tmp_path, out)
    assert written[:2] == [out, tmp_path / "one-trials.csv"]
    html = out.read_text(encoding="utf-8")
    assert html.count(f"need at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials; this study has 1.") == 2
    assert html.count(PLOT_DIV) == 5  # history, parallel, slices, curves, wall time
    assert "Best trial (search score) (trial 0)</h2>" in html and "no stored config" in html


# ---------------------------------------------------------------------------- a confirmed study


def confirmed_study(tmp_path, baseline_label="default", baseline_trial=None):
    """Three complete trials and a stored confirmation: trial 2 wins on every test seed, trial 1 loses on every one."""
    study = optuna.create_study(storage=sqlite_url(tmp_path / "c.db"), study_name="c", direction="maximize")
    for value in (5.0, 6.0, 9.0):
        study.add_trial(
            create_trial(
                params={"policy_lr": 1e-4, "epsilon_eta": 0.01},
                distributions=SPACE,
                value=value,
                intermediate_values={256: value},
                user_attrs={"wall_time_s": 1.0, "config": {"agent": {"policy_lr": 1e-4}}},
            )
        )
    seeds = [100, 101, 102, 103]
    base = [10.0, 11.0, 12.0, 13.0]
    ranked = rank(
        [
            describe("trial 2", seeds, [20.0, 21.0, 22.0, 23.0], base, source_trial=2, search_score=9.0),
            describe("trial 1", seeds, [1.0, 2.0, 3.0, 4.0], base, source_trial=1, search_score=6.0),
            describe(baseline_label, seeds, base, base, source_trial=baseline_trial, is_baseline=True),
        ]
    )
    records.write_confirmation(study, ranked)
    return study


def test_confirmed_winner_heading_names_its_trial_once(tmp_path):
    study = confirmed_study(tmp_path)
    out = tmp_path / "c.html"
    build_report(study, sqlite_url(tmp_path / "c.db"), tmp_path, out)
    html = out.read_text(encoding="utf-8")
    assert "<h2>Confirmed winner: trial 2</h2>" in html and "trial 2 (trial 2)" not in html
    assert heading("Confirmed winner: trial 2 (default)", 2) == "Confirmed winner: trial 2 (default)"
    assert heading("Confirmed winner: default", 0) == "Confirmed winner: default (trial 0)"  # the label hides it
    assert heading("Confirmed winner: trial 12", 1) == "Confirmed winner: trial 12 (trial 1)"  # another trial
    assert heading("Best trial (search score)", 3) == "Best trial (search score) (trial 3)"


@pytest.mark.parametrize(("label", "trial"), [("default", None), ("trial 0 (default)", 0)])
def test_the_default_is_named_once(tmp_path, label, trial):
    study = confirmed_study(tmp_path, label, trial)
    out = tmp_path / "c.html"
    build_report(study, sqlite_url(tmp_path / "c.db"), tmp_path, out)
    html = out.read_text(encoding="utf-8")
    assert "default (default)" not in html and "(default))" not in html
    (line,) = figures.confirmed_intervals(records.read_confirmation(study)).layout.shapes
    (note_,) = figures.confirmed_intervals(records.read_confirmation(study)).layout.annotations
    assert note_.text == label and line.x0 == pytest.approx(11.5)
    assert figures.baseline_annotation("trial 4") == "default (trial 4)"


def test_probability_axis_leaves_room_for_markers_at_0_and_1(tmp_path):
    ranked = records.read_confirmation(confirmed_study(tmp_path))
    assert sorted(c.poi for c in ranked if not c.is_baseline) == [0.0, 1.0]  # markers on both edges
    fig = figures.probability_of_improvement(ranked)
    low, high = fig.layout.xaxis.range
    assert low == -POI_AXIS_MARGIN < 0 and high == 1 + POI_AXIS_MARGIN > 1 and POI_AXIS_MARGIN >= 0.03
    assert fig.data[0].cliponaxis is False  # and the markers are not clipped at the axis either


# ---------------------------------------------------------------------------- errors


def test_missing_storage_is_a_one_line_error(tmp_path):
    proc = report(tmp_path, "--study", "nope", "--run-dir", str(tmp_path / "nothing"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no stored study at") and proc.stderr.count("\n") == 1
    assert not list(tmp_path.glob("*.html"))


def test_missing_study_in_a_storage_names_the_ones_there(tiny_study, tmp_path):
    proc = report(tmp_path, "--study", "nope", "--storage", tiny_study.url)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"no study 'nope' in {tiny_study.url}; studies there: {NAME}" in proc.stderr


# ---------------------------------------------------------------------------- flattening


def test_flatten_and_redaction():
    attrs = {
        "config": {"agent": {"policy_lr": 0.1, "sizes": [16, 16]}},
        "seeds": [0, 1],
        "n": 3,
        "command": f"x --storage 'mysql+pymysql://u:{SECRET}@h:3306/db' --trials 4",
    }
    flat = flatten(attrs, "user_attrs")
    assert flat == {
        "user_attrs.config.agent.policy_lr": 0.1,
        "user_attrs.config.agent.sizes": "[16, 16]",
        "user_attrs.seeds": "[0, 1]",
        "user_attrs.n": 3,
        "user_attrs.command": "x --storage 'mysql+pymysql://u:***@h:3306/db' --trials 4",
    }
    assert redact_text("no url here") == "no url here"


def test_table_marks_retried_failures(tmp_path):
    study = optuna.create_study(storage=sqlite_url(tmp_path / "r.db"), study_name="r", direction="maximize")
    space = {"policy_lr": SPACE["policy_lr"]}
    study.add_trial(create_trial(state=TrialState.FAIL, params={"policy_lr": 1e-4}, distributions=space))
    study.add_trial(
        create_trial(params={"policy_lr": 1e-4}, distributions=space, value=1.0, system_attrs={"retry_history": [0]})
    )
    frame = study_table(study)
    assert frame["retried"].tolist() == [True, False]
    assert [json.loads(r) for r in frame["retry_of"]] == [[], [0]]
