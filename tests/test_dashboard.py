"""A real ``optuna-dashboard`` server on the tiny study, checked through its HTTP API."""

from __future__ import annotations

import csv
import io
import math

import pytest
from optuna.trial import TrialState

from analysis.dashboard import dashboard_argv, dashboard_command
from vmpo_tune.notes import study_note
from vmpo_tune.records import STUDY_INFO as SPEC_ATTR
from vmpo_tune.records import StudyInfo

from .study_fixture import N_TRIALS, NAME, WRECKED, get, get_json, running_dashboard, shared_tiny_study


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    return shared_tiny_study(tmp_path_factory)


@pytest.fixture(scope="module")
def dashboard(tiny_study, tmp_path_factory):
    log = tmp_path_factory.mktemp("dashboard") / "optuna-dashboard.log"
    with running_dashboard(tiny_study, log) as server:
        yield server


@pytest.fixture(scope="module")
def detail(dashboard):
    summaries = get_json(f"{dashboard.base}/api/studies")["study_summaries"]
    assert [s["study_name"] for s in summaries] == [NAME]
    return get_json(f"{dashboard.base}/api/studies/{summaries[0]['study_id']}")


def test_dashboard_lists_the_study_with_its_artifact_store(dashboard, tiny_study):
    assert get_json(f"{dashboard.base}/api/meta")["artifact_is_available"] is True
    (summary,) = get_json(f"{dashboard.base}/api/studies")["study_summaries"]
    assert summary["directions"] == ["maximize"]
    assert summary["user_attrs"]  # the vmpo_tune.study attribute, among others
    assert {a["key"] for a in summary["user_attrs"]} >= {SPEC_ATTR}


def serialized(value):
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(value, value)


def test_dashboard_serves_every_trial_and_its_learning_curve(detail, tiny_study):
    trials = tiny_study.load().get_trials()
    assert len(trials) == N_TRIALS
    served = {t["number"]: t for t in detail["trials"]}
    assert sorted(served) == [t.number for t in trials]
    for t in trials:
        got = served[t.number]
        assert got["state"] == t.state.name.capitalize()
        curve = {v["step"]: serialized(v["value"]) for v in got["intermediate_values"]}
        assert curve == t.intermediate_values
        assert got.get("values") == ([t.value] if t.value is not None else None)  # a pruned trial keeps its last
    assert detail["has_intermediate_values"] is True
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (t.value, -t.number))
    assert [b["number"] for b in detail["best_trials"]] == [best.number]


def test_dashboard_lists_and_serves_the_artifacts(dashboard, detail, tiny_study):
    trials = {t.number: t for t in tiny_study.load().get_trials()}
    complete = [t for t in detail["trials"] if t["state"] == "Complete"]
    assert complete
    for served in complete:
        names = {a["filename"]: a for a in served["artifacts"]}
        assert set(names) == {"seed0_best.pt", "seed0_evaluations.csv"}
        curve = names["seed0_evaluations.csv"]
        body = get(f"{dashboard.base}/artifacts/{served['study_id']}/{served['trial_id']}/{curve['artifact_id']}")
        assert body == (tiny_study.artifacts / curve["artifact_id"]).read_bytes()
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        returns = {int(r["env_steps"]): float(r["eval/return_mean"]) for r in rows}
        assert returns == trials[served["number"]].intermediate_values  # one seed: the curve is that seed's
        checkpoint = names["seed0_best.pt"]
        blob = get(f"{dashboard.base}/artifacts/{served['study_id']}/{served['trial_id']}/{checkpoint['artifact_id']}")
        assert blob[:2] == b"PK" and blob == (tiny_study.artifacts / checkpoint["artifact_id"]).read_bytes()
    others = [t for t in detail["trials"] if t["state"] != "Complete"]
    assert all(t["artifacts"] == [] for t in others)


def test_dashboard_shows_the_study_note(detail, tiny_study):
    info = StudyInfo.from_attrs(tiny_study.load().user_attrs[SPEC_ATTR])
    body = detail["note"]["body"]
    assert body == study_note(info)  # saved by the search when it created the study
    assert "`tests.toy_envs:Survive-v0`" in body and "512 env steps on each of 1 seed(s)" in body
    assert all(f"`{name}`" in body for name in WRECKED)  # the searched parameters


def test_study_note_says_what_is_tuned_env_and_budget():
    info = StudyInfo(
        name="hopper",
        env_id="Hopper-v5",
        description="V-MPO on Hopper",
        total_steps=1_000_000,
        seeds_per_trial=3,
        aggregate="iqm",
        objective="best",
        seed=5,
        search_space=[
            {"name": "policy_lr", "optuna_name": "policy_lr"},
            {"name": "gamma", "optuna_name": "one_minus_gamma"},
        ],
    )
    note = study_note(info, n_trials=50)
    assert note.splitlines() == [
        "## hopper",
        "",
        "V-MPO on Hopper",
        "",
        "- **Tunes:** V-MPO hyperparameters: `policy_lr`, `one_minus_gamma`",
        "- **Environment:** `Hopper-v5`",
        "- **Budget per trial:** 1,000,000 env steps on each of 3 seed(s) (tuning seeds [5, 6, 7])",
        "- **Trials:** 50",
        "- **Objective:** maximise the best evaluation return, iqm over the 3 tuning seed(s)",
        "",
        "Intermediate values are evaluation returns reported at env-step marks; each complete trial's best "
        "checkpoint and learning curve are its artifacts; videos filmed with `python -m vmpo_tune.play --study` are "
        "the study's.",
    ]
    assert study_note(StudyInfo()).startswith("## study\n")  # a study made by another tool still gets a note


def test_dashboard_command_for_the_default_storage():
    assert dashboard_argv("sqlite:///runs/hopper/study.db", "runs/hopper/artifacts") == [
        "optuna-dashboard",
        "sqlite:///runs/hopper/study.db",
        "--artifact-dir",
        "runs/hopper/artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        "8080",
    ]
    shown = dashboard_command("postgresql://me:hunter2@db:5432/optuna")
    assert shown == "optuna-dashboard 'postgresql://me:***@db:5432/optuna' --host 127.0.0.1 --port 8080"
