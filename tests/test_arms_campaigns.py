"""Issue 16's returns campaigns (benchmarks/_arms.py: precision.py, policy_width.py, value_width.py,
policy_width_bf16.py): the arms' study files and the RESULTS.md tables."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from benchmarks import _arms, _campaign, acting, policy_width, policy_width_bf16, precision, value_width
from benchmarks.arms_table import RUNS_PER_ARM
from vmpo_tune import provenance, records
from vmpo_tune.config import TrainConfig, VMPOConfig
from vmpo_tune.errors import UserError
from vmpo_tune.search.spec import default_params, load_spec, params_to_config
from vmpo_tune.stats import CandidateStats

from .search_helpers import ROOT

P256 = {"policy_layer_sizes": [256, 256]}  # what the shipped file had before the policy-width campaign
TORCH = {"acting": "torch"}  # the default before 2026-12-07, when every kept arm ran


@pytest.mark.parametrize(
    "campaign, options",
    [
        (
            precision,
            [{**P256, **TORCH, "matmul_precision": "highest"}, {**P256, **TORCH, "matmul_precision": "medium"}],
        ),
        (policy_width, [{**P256, **TORCH}, {"policy_layer_sizes": [128, 128], **TORCH}]),
        (value_width, [{**P256, **TORCH}, {**P256, **TORCH, "value_layer_sizes": [128, 128]}]),
        (
            policy_width_bf16,
            [
                {**P256, **TORCH, "matmul_precision": "medium"},
                {"policy_layer_sizes": [128, 128], "matmul_precision": "medium", **TORCH},
            ],
        ),
        (acting, [TORCH, {"acting": "numpy"}]),
    ],
)
def test_each_arm_is_the_shipped_hopper_study_with_only_its_agent_options_set(tmp_path, monkeypatch, campaign, options):
    monkeypatch.setattr(_arms, "RUNS", tmp_path)
    shipped = load_spec(str(ROOT / "studies" / "hopper.yaml"))
    assert [dict(arm.options) for arm in campaign.ARMS] == options
    for arm in campaign.ARMS:
        _arms.write_study_file(arm)
        assert arm.study_file.parent.parent == tmp_path / arm.campaign
        spec = load_spec(str(arm.study_file))
        assert spec.name == "hopper"  # stored as a user's `hopper` study would be
        agent = params_to_config(spec, default_params(spec)).agent
        for key, value in arm.options:
            assert getattr(agent, key) == (tuple(value) if isinstance(value, list) else value)
        mine, theirs = spec.fingerprint(), shipped.fingerprint()
        assert mine.pop("agent") == {**theirs.pop("agent"), **dict(arm.options)}
        assert mine == theirs


def _unit(value: float, label: str = "trial 0 (default)", cpu_s: float = 90.0, day: int = 3):
    attrs = {records.CANDIDATE: label, records.COMPUTE_CPU: cpu_s, records.PROVENANCE: {"cpu": "Test CPU"}}
    done = datetime(2026, 12, day, 17, 0)
    return SimpleNamespace(state=TrialState.COMPLETE, value=value, user_attrs=attrs, datetime_complete=done)


def _arm_data(shift: float, cpu_s: float) -> dict:
    returns = [100.0 * i + shift for i in range(1, 21)]  # 100 .. 2,000 (+ shift) on seeds 1000-1019
    seeds = list(range(1000, 1020))
    stats = CandidateStats("trial 0 (default)", 0, 500.0, seeds, returns, final_returns=returns, is_baseline=True)
    return {
        "trials": [_unit(500.0 + shift, cpu_s=cpu_s)],
        "units": [_unit(r, cpu_s=cpu_s, day=3 + i // 15) for i, r in enumerate(returns)],
        "confirmation": [stats],
        "simulator": "mujoco 3.17.0",
    }


def test_the_table_gives_each_arms_iqm_over_its_test_seeds_and_the_probability_of_improvement():
    text = precision.render({"float32": _arm_data(0.0, 96.0), "bfloat16": _arm_data(50.0, 72.0)}, "a test machine")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in text.splitlines() if line.startswith("| `")}
    float32, bfloat16 = rows["| `highest` (float32)"], rows["| `medium` (bfloat16)"]
    # IQM of 10 values drops 2 at each end: 300..800 -> 550 (1000-1009), 1,300..1,800 -> 1,550 (1010-1019); of 20
    # it drops 5: 600..1,500 -> 1,050
    assert float32[1].startswith("550 [") and float32[2].startswith("1,550 [") and float32[3].startswith("**1,050** [")
    assert bfloat16[3].startswith("**1,100** [") and bfloat16[4].startswith("1,100 [")  # mean 1,050 + 50
    assert float32[5] == "100 to 2,000" and float32[6].startswith("100 200 300") and "; 1,100 1,200" in float32[6]
    assert (float32[7], float32[8]) == ("500", "96 |") and bfloat16[8] == "72 |"
    # medium = highest + 50 on values 100 apart: it wins exactly the pairs with i >= j, 210 of 400
    assert "P(`medium` beats `highest` on a fresh seed), over all 20 seeds: **0.53** [" in text
    assert "Runs: 2026-12-03 to 2026-12-04. CPU: Test CPU (float32); Test CPU (bfloat16)" in text
    assert "Simulator: mujoco 3.17.0 (float32); mujoco 3.17.0 (bfloat16)." in text
    assert "`python benchmarks/precision.py run` (1.0 CPU hours here;" in text  # 21 x (96 + 72) = 3,528 CPU-s


def test_the_cpu_line_names_the_kind_where_the_runs_recorded_it():
    """Runs since 2026-12-07 record the CPU's kind (one name covers CPUs that compute other bits)."""
    data = {"float32": _arm_data(0.0, 96.0), "bfloat16": _arm_data(50.0, 72.0)}
    kind = "Test CPU; AVX512 amx_bf16; ONEDNN_MAX_CPU_ISA=AVX2"
    for unit in data["bfloat16"]["units"]:
        unit.user_attrs[records.PROVENANCE] = {"cpu": "Test CPU", "cpu_kind": kind}
    data["bfloat16"]["units"][0].user_attrs[records.PROVENANCE] = {"cpu": "Test CPU", "cpu_kind": "Test CPU; AVX2"}
    text = precision.render(data, "a test machine")
    both = "Test CPU with AVX2 and Test CPU with AVX512 amx_bf16, ONEDNN_MAX_CPU_ISA=AVX2"
    assert f"CPU: Test CPU (float32); {both} (bfloat16)." in text


def test_the_value_width_campaign_shares_the_policy_width_campaigns_default_runs():
    assert value_width.ARMS[0] is policy_width.ARMS[0]
    assert value_width.ARMS[0].kept_db == _arms.KEPT / "policy-width-hopper" / "default.db"
    assert value_width.ARMS[1].kept_db == _arms.KEPT / "value-width-hopper" / "value-128.db"


def test_the_bf16_policy_width_campaign_shares_the_precision_campaigns_bfloat16_runs():
    assert policy_width_bf16.ARMS[0] is precision.ARMS[1]
    assert policy_width_bf16.ARMS[0].kept_db == _arms.KEPT / "precision-hopper" / "bfloat16.db"
    assert policy_width_bf16.ARMS[1].kept_db == _arms.KEPT / "policy-width-hopper-bf16" / "policy-128.db"


def test_the_policy_width_table_names_its_own_arms_and_compares_the_narrow_policy_with_the_default():
    # the narrow arm 100 below the default on values 100 apart: it wins the pairs with i > j + 1, 171 of 400, and
    # ties the 19 with i = j + 1 (half each): (171 + 9.5) / 400 = 0.45
    data = {"default": _arm_data(0.0, 180.0), "policy-128": _arm_data(-100.0, 120.0)}
    text = policy_width.render(data, "a test machine")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in text.splitlines() if line.startswith("| 2 x")}
    assert rows["| 2 x 256 (default)"][3].startswith("**1,050** [") and rows["| 2 x 128 (policy-128)"][3].startswith(
        "**950** ["
    )
    assert "| policy network | seeds 1000-1009: IQM [95% CI] |" in text
    assert "P(`policy-128` beats `default` on a fresh seed), over all 20 seeds: **0.45** [" in text
    assert "CPU: Test CPU (default); Test CPU (policy-128)" in text
    assert "Reproduce: `python benchmarks/policy_width.py run` (1.8 CPU hours here;" in text  # 21 x 300 CPU-s
    assert "`python benchmarks/policy_width.py table`. Storage kept in `results/policy-width-hopper/`." in text


@pytest.mark.parametrize("cut", [0, 5, RUNS_PER_ARM - 1])
def test_an_unfinished_campaign_says_how_far_each_arm_got_and_how_to_continue(cut):
    partial = _arm_data(0.0, 90.0)
    runs = [*partial["trials"], *partial["units"]]
    for unit in runs[cut:]:
        unit.state = TrialState.RUNNING
    text = precision.render({"float32": partial, "bfloat16": None}, "a test machine")
    assert f"Runs so far: float32 {cut} of {RUNS_PER_ARM}, bfloat16 0 of {RUNS_PER_ARM}." in text
    assert "Continue with `python benchmarks/precision.py run` (resumable)." in text and "| update's" not in text


def test_running_an_arm_again_trains_what_its_kept_storage_holds_and_the_shipped_default_is_the_numpy_arm(
    tmp_path, monkeypatch
):
    import optuna

    monkeypatch.setattr(_arms, "RUNS", tmp_path)
    spec = load_spec("hopper")
    shipped = params_to_config(spec, default_params(spec))
    campaigns = (precision, policy_width, value_width, policy_width_bf16, acting)
    arms = {(arm.campaign, arm.name): arm for c in campaigns for arm in c.ARMS}
    assert len(arms) == 8
    for key, arm in arms.items():
        _arms.write_study_file(arm)  # what `run` would train on a machine without the kept storage
        arm_spec = load_spec(str(arm.study_file))
        again = params_to_config(arm_spec, default_params(arm_spec))
        study = optuna.load_study(study_name="hopper", storage=f"sqlite:///{arm.kept_db}")
        ran = study.trials[0].user_attrs["config"]
        assert VMPOConfig.from_dict(ran["agent"]) == again.agent, key
        assert TrainConfig.from_dict(ran["train"]) == again.train == shipped.train
        assert ran["total_steps"] == again.total_steps == shipped.total_steps
    # what RESULTS.md's policy-width sections measured and shipped
    for arm in (policy_width.ARMS[1], policy_width_bf16.ARMS[1]):
        policy_128 = optuna.load_study(study_name="hopper", storage=f"sqlite:///{arm.kept_db}")
        ran = VMPOConfig.from_dict(policy_128.trials[0].user_attrs["config"]["agent"])
        assert ran == dataclasses.replace(shipped.agent, acting="torch")  # the default then
    assert shipped.agent.policy_layer_sizes == (128, 128) and shipped.agent.matmul_precision == "medium"
    # what RESULTS.md's acting section measured and shipped: the default as it is now, and the same acting with torch
    torch_arm, numpy_arm = (
        optuna.load_study(study_name="hopper", storage=f"sqlite:///{a.kept_db}") for a in acting.ARMS
    )
    assert VMPOConfig.from_dict(numpy_arm.trials[0].user_attrs["config"]["agent"]) == shipped.agent
    ran = VMPOConfig.from_dict(torch_arm.trials[0].user_attrs["config"]["agent"])
    assert ran == dataclasses.replace(shipped.agent, acting="torch") and shipped.agent.acting == "numpy"


def test_the_acting_section_of_results_md_is_what_the_kept_storages_give():
    data = {arm.name: _campaign.load_campaign_study("hopper", arm.kept_db) for arm in acting.ARMS}
    machine = "the 2-core x86_64 development machine"
    section = (
        (ROOT / "RESULTS.md").read_text().split("<!-- acting-hopper:start -->")[1].split("<!-- acting-hopper:end")[0]
    )
    assert acting.render(data, machine).strip() in section
    assert "P(`numpy` beats `torch` on a fresh seed), over all 20 seeds: **0.56** [0.38, 0.74]" in section


def test_snapshot_keeps_a_consistent_copy_of_each_live_storage_and_skips_the_missing(tmp_path, monkeypatch, capsys):
    import sqlite3

    from benchmarks import _campaign

    monkeypatch.setattr(_campaign, "ROOT", tmp_path)
    live, kept = tmp_path / "runs" / "a.db", tmp_path / "results" / "a.db"
    live.parent.mkdir()
    with sqlite3.connect(live) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (42)")
    _campaign.keep_copies([(live, kept), (tmp_path / "runs" / "never.db", tmp_path / "results" / "never.db")])
    with sqlite3.connect(kept) as db:
        assert db.execute("SELECT x FROM t").fetchall() == [(42,)]
    assert not (tmp_path / "results" / "never.db").exists()
    assert capsys.readouterr().out == "kept results/a.db\n"


# ---------------------------------------------------------------------------- one kind of CPU per campaign


def test_the_kept_storages_give_the_cpu_their_runs_recorded():
    """Runs of 2026-12-03 recorded only the CPU's name; the precision campaign's bfloat16 arm ran on the Intel Xeon."""
    data = _campaign.load_campaign_study("hopper", _arms.KEPT / "precision-hopper" / "bfloat16.db")
    assert _campaign.recorded_cpus(data) == {("Intel(R) Xeon(R) Processor", None)}
    assert _campaign.recorded_cpus(None) == set()


def test_a_campaign_of_this_kind_goes_on_and_one_of_another_kind_is_refused():
    here = (provenance.cpu_model(), provenance.cpu_kind())
    assert _campaign.check_cpu_kind("c", {here}) is None
    with pytest.raises(UserError) as refused:
        _campaign.check_cpu_kind("c", {here, ("Other CPU", "Other CPU; AVX2")})
    assert str(refused.value).startswith(f"campaign c: its kept runs ran on Other CPU; AVX2, this machine is {here[1]}")
    assert "run it on a machine of that kind" in str(refused.value)
    with pytest.raises(UserError, match=r"its kept runs ran on Other CPU, this machine"):
        _campaign.check_cpu_kind("c", {("Other CPU", None)})  # another name: another kind, recorded before kinds


def test_runs_that_recorded_only_this_cpus_name_give_a_note_on_how_to_check():
    note = _campaign.check_cpu_kind(
        "c", {(provenance.cpu_model(), None), (provenance.cpu_model(), provenance.cpu_kind())}
    )
    assert note.startswith(f"note: campaign c's kept runs recorded only their CPU's name ({provenance.cpu_model()})")
    assert "export --by search" in note and "train --config" in note


def test_run_refuses_a_campaign_kept_from_another_kind_of_cpu_and_changes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_arms, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(_arms, "KEPT", tmp_path / "results")
    arm = precision.ARMS[1]
    arm.kept_db.parent.mkdir(parents=True)
    study = optuna.create_study(study_name="hopper", storage=f"sqlite:///{arm.kept_db}")
    other = {"cpu": "Other CPU", "cpu_kind": "Other CPU; AVX2"}
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={records.PROVENANCE: other}))
    before = arm.kept_db.read_bytes()
    with pytest.raises(SystemExit) as stopped:
        precision.CAMPAIGN.main(precision.__doc__, ["run"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: campaign precision-hopper: its kept runs ran on Other CPU; AVX2, this machine is ")
    assert arm.kept_db.read_bytes() == before and not (tmp_path / "runs").exists()  # no run started, nothing copied
