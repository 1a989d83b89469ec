"""A study file that only widens numeric ranges continues its stored study; anything else is still refused."""

from __future__ import annotations

import copy
import json

from vmpo_tune import records
from vmpo_tune.search.space import ParamSpec
from vmpo_tune.search.widening import widened_ranges

from .search_helpers import TOY_STUDY, cli, load, write_study
from .test_validation_cli import assert_one_line_error


def fingerprint(space: list[dict], **rest) -> dict:
    return {"env_id": "Hopper-v5", "total_steps": 1000, "agent": {}, "train": {}, "space": space, **rest}


def described(name: str, kind: str, **fields) -> dict:
    """A parameter as a stored fingerprint holds it (``ParamSpec.describe``: a bound of 0 is left out)."""
    return ParamSpec(name, kind, **fields).describe()


LR = described("policy_lr", "float", low=1e-5, high=3e-3, log=True)
STD = described("init_log_std", "float", low=-1.5, high=0.0)
STEPS = described("m_steps", "categorical", choices=(4, 8, 16))
ENVS = described("num_envs", "int", low=1, high=8)


def test_a_wider_range_is_named_and_everything_else_is_not_a_widening():
    assert "high" not in STD  # the form every stored study with a bound at 0 has
    old = fingerprint([LR, STD, STEPS, ENVS])
    wider = fingerprint([LR, described("init_log_std", "float", low=-1.5, high=1.0), STEPS,
                         described("num_envs", "int", low=1, high=16)])  # fmt: skip
    assert widened_ranges(old, wider) == ["init_log_std: -1.5 .. 0 -> -1.5 .. 1.0", "num_envs: 1 .. 8 -> 1 .. 16"]
    both_ends = fingerprint([described("policy_lr", "float", low=1e-6, high=1e-2, log=True), STD, STEPS, ENVS])
    assert widened_ranges(old, both_ends) == ["policy_lr: 1e-05 .. 0.003 -> 1e-06 .. 0.01"]
    to_zero = fingerprint([LR, STD, STEPS, ENVS, described("gamma", "float", low=0.5, high=0.9)])
    assert widened_ranges(to_zero, fingerprint([LR, STD, STEPS, ENVS, described("gamma", "float", high=0.9)])) == [
        "gamma: 0.5 .. 0.9 -> 0 .. 0.9"
    ]
    not_widenings = {
        "the same space": old,
        "a narrower high": fingerprint([LR, {**STD, "high": -0.5}, STEPS, ENVS]),
        "wider at one end, narrower at the other": fingerprint([LR, {**STD, "low": -1.0, "high": 1.0}, STEPS, ENVS]),
        "another log setting": fingerprint([described("policy_lr", "float", low=1e-5, high=1e-2), STD, STEPS, ENVS]),
        "more categorical choices": fingerprint([LR, STD, {**STEPS, "choices": [4, 8, 16, 32]}, ENVS]),
        "a parameter more": fingerprint([LR, STD, STEPS, ENVS, {**STD, "name": "gae_lambda"}]),
        "a parameter less": fingerprint([LR, STD, STEPS]),
        "the order": fingerprint([STD, LR, STEPS, ENVS]),
        "a condition": fingerprint([LR, {**STD, "high": 1.0, "when": [["m_steps", 4]]}, STEPS, ENVS]),
        "a wider range and another budget": fingerprint([LR, {**STD, "high": 1.0}, STEPS, ENVS], total_steps=2000),
    }
    for case, new in not_widenings.items():
        assert widened_ranges(old, new) is None, case


def test_search_goes_on_in_a_widened_space_and_still_refuses_a_narrowed_one(tmp_path):
    write_study(tmp_path)
    first = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "2", "--out", "run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    url = f"sqlite:///{tmp_path}/run/study.db"
    info_before = records.read_study_info(load(url))

    wide = copy.deepcopy(TOY_STUDY)
    wide["search_space"]["epsilon_eta"]["high"] = 0.5
    write_study(tmp_path, wide)
    proc = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "4", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "search space widened (epsilon_eta: 0.001 .. 0.1 -> 0.001 .. 0.5)" in proc.stderr
    study = load(url)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 4
    # the stored trials keep the range they were sampled in; the new ones are sampled in the wider one
    assert [t.distributions["epsilon_eta"].high for t in trials] == [0.1, 0.1, 0.5, 0.5]
    stored = json.loads(records.read_fingerprint(study))
    assert [p["high"] for p in stored["space"] if p["name"] == "epsilon_eta"] == [0.5]
    info = records.read_study_info(study)
    assert [p["high"] for p in info.search_space if p["name"] == "epsilon_eta"] == [0.5]
    # the default the study started from (the confirmation's baseline) is unchanged
    assert info.default_config.identity() == info_before.default_config.identity()

    # a rerun with the same wider file resumes quietly; a narrower one is refused and changes nothing
    again = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "4", "--out", "run", cwd=tmp_path)
    assert again.returncode == 0 and "widened" not in again.stderr, again.stderr
    narrow = copy.deepcopy(TOY_STUDY)
    narrow["search_space"]["epsilon_eta"]["high"] = 0.05
    write_study(tmp_path, narrow)
    refused = cli("vmpo_tune.search", "--study", "toy.yaml", "--trials", "6", "--out", "run", cwd=tmp_path)
    assert_one_line_error(refused, "another env, budget", "--study-name")
    assert len(load(url).trials) == 4
    assert records.read_fingerprint(load(url)) == records.read_fingerprint(study)
