"""Search space sampling, the converter, samplers and pruners (in process, no training)."""

from __future__ import annotations

import copy

import optuna
import pytest

from vmpo_tune.config import VMPOConfig
from vmpo_tune.errors import UserError
from vmpo_tune.search.factories import make_pruner, make_sampler
from vmpo_tune.search.pruning import SeedMedianPruner
from vmpo_tune.search.space import params_to_values, sample_params
from vmpo_tune.search.spec import (
    PRUNERS,
    SAMPLERS,
    default_params,
    load_spec,
    params_to_config,
    parse_spec,
)

from .search_helpers import TOY_STUDY

SPACE = {
    "policy_lr": {"low": 1.0e-5, "high": 1.0e-2, "log": True, "default": 3.0e-4},
    "gamma": {"low": 0.001, "high": 0.05, "log": True, "transform": "one_minus", "default": 0.99},
    "m_steps": {"low": 1, "high": 8},
    "advantage_estimator": {"choices": ["returns", "dae", "gae"], "default": "gae"},
    "gae_lambda": {"low": 0.8, "high": 1.0, "default": 0.95, "when": {"advantage_estimator": "gae"}},
}


def spec_with(space=SPACE, **top):
    data = copy.deepcopy(TOY_STUDY)
    data["search_space"] = copy.deepcopy(space)
    data["agent"].pop("m_steps")  # searched here
    data.update(top)
    return parse_spec(data, "toy.yaml", check_env=False)


def test_conditional_parameter_only_when_its_condition_holds_and_logs_are_log():
    spec = spec_with()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        params = sample_params(trial, spec.space)
        seen.add(params["advantage_estimator"])
        assert ("gae_lambda" in params) == (params["advantage_estimator"] == "gae")
        assert "one_minus_gamma" in params and "gamma" not in params
        study.tell(trial, 0.0)
    assert seen == {"returns", "dae", "gae"}
    dists = study.trials[0].distributions
    assert dists["policy_lr"].log and dists["one_minus_gamma"].log and not dists["m_steps"].log
    assert isinstance(dists["m_steps"], optuna.distributions.IntDistribution)


def test_converter_inverts_transforms_and_fills_fixed_values():
    spec = spec_with()
    params = {"policy_lr": 1e-3, "one_minus_gamma": 0.002, "m_steps": 3, "advantage_estimator": "dae"}
    assert params_to_values(spec.space, params)["gamma"] == pytest.approx(0.998)
    cfg = params_to_config(spec, params, seed=7)
    agent, train = cfg.agent, cfg.train
    assert agent.gamma == pytest.approx(0.998) and agent.m_steps == 3 and agent.policy_lr == 1e-3
    assert agent.policy_layer_sizes == (16,)  # fixed in the study's agent section
    assert agent.gae_lambda == VMPOConfig().gae_lambda  # inactive conditional keeps the default
    assert (train.seed, train.env_id, train.rollout_steps, train.eval_interval) == (7, TOY_STUDY["env_id"], 64, 256)


def test_default_params_are_in_space_and_respect_conditions():
    spec = spec_with()
    params = default_params(spec)
    # m_steps has no default in the file: the config's own default (1) lies in the range, so it is used
    assert params == {
        "policy_lr": 3e-4,
        "one_minus_gamma": 0.01,
        "m_steps": 1,
        "advantage_estimator": "gae",
        "gae_lambda": 0.95,
    }
    off = spec_with({**SPACE, "advantage_estimator": {"choices": ["returns", "gae"], "default": "returns"}})
    assert "gae_lambda" not in default_params(off)


@pytest.mark.parametrize("name", ["hopper", "halfcheetah", "walker2d", "invertedpendulum", "demo"])
def test_shipped_studies_cover_the_required_space(name):
    spec = load_spec(name, check_env=False)
    names = {p.name for p in spec.space}
    required = {
        "epsilon_eta",
        "epsilon_mu",
        "epsilon_sigma",
        "topk_fraction",
        "policy_lr",
        "value_lr",
        "temperature_lr",
        "alpha_lr",
        "advantage_estimator",
        "gae_lambda",
    }
    assert required <= names
    by_name = {p.name: p for p in spec.space}
    for rate in ("epsilon_eta", "epsilon_mu", "epsilon_sigma", "policy_lr", "value_lr", "temperature_lr", "alpha_lr"):
        assert by_name[rate].log, rate
    assert by_name["gae_lambda"].when == (("advantage_estimator", "gae"),)
    params_to_config(spec, default_params(spec))  # the documented default configuration is valid


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_builds_and_samples(sampler):
    spec = spec_with()
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec, sampler, seed=1))
    for i in range(4):
        trial = study.ask()
        params = sample_params(trial, spec.space)
        params_to_config(spec, params)
        study.tell(trial, float(i))
    assert len(study.trials) == 4


@pytest.mark.parametrize("pruner", PRUNERS)
def test_every_pruner_builds_with_env_step_resources(pruner):
    spec = spec_with(total_steps=1000, pruner={"name": "none"})
    built = make_pruner(spec, pruner)  # another name than the study's: that pruner's defaults
    expected = {
        "median": (optuna.pruners.MedianPruner, {"_n_warmup_steps": 1000 // 3, "_n_startup_trials": 5}),
        "hyperband": (optuna.pruners.HyperbandPruner, {"_min_resource": 256, "_max_resource": 1000}),
        "halving": (optuna.pruners.SuccessiveHalvingPruner, {"_min_resource": 256, "_reduction_factor": 3}),
        "wilcoxon": (optuna.pruners.WilcoxonPruner, {"_p_threshold": 0.1, "_n_startup_steps": 2}),
        "none": (optuna.pruners.NopPruner, {}),
        "seedmedian": (SeedMedianPruner, {"n_warmup_steps": 1000 // 3, "n_startup_trials": 5, "margin": 1.0}),
    }[pruner]
    assert isinstance(built, expected[0])
    assert {k: getattr(built, k) for k in expected[1]} == expected[1]


def test_sampler_option_errors_name_the_option():
    spec = spec_with(sampler={"name": "tpe", "n_startup": 3})
    with pytest.raises(UserError, match="sampler.n_startup.*TPESampler"):
        make_sampler(spec)


def test_timing_and_status_are_read_and_checked():
    spec = spec_with(timing={"seconds_per_trial": 12.5, "measured_on": "a laptop"}, status="untested")
    assert spec.timing == {"seconds_per_trial": 12.5, "measured_on": "a laptop"} and spec.status == "untested"
    assert spec.fingerprint() == spec_with().fingerprint()  # neither changes what a trial's value means
    with pytest.raises(UserError, match=r"timing.seconds_per_trial: must be > 0"):
        spec_with(timing={"seconds_per_trial": -1})
    with pytest.raises(UserError, match=r"timing.per_trial: unknown key"):
        spec_with(timing={"per_trial": 3})


def test_the_demo_study_starts_from_the_untuned_config_defaults():
    """The README's demo compares a search with VMPOConfig's own defaults: every searched one must be in range."""
    spec = load_spec("demo", check_env=False)
    defaults = VMPOConfig().to_dict()
    assert all(p.default is None for p in spec.space)
    expected = {p.name: defaults[p.name] for p in spec.space if p.name != "gae_lambda"}  # gae is not the default
    assert defaults["advantage_estimator"] != "gae" and default_params(spec) == expected
