"""adopt: the confirmed winner's exact values become the study file's defaults, comments and layout kept; refused
(one line, exit 2, the file as it was) until a confirmation settled it."""

from __future__ import annotations

import dataclasses
from math import nan

import pytest
import yaml

from vmpo_tune import records
from vmpo_tune.config import VMPOConfig
from vmpo_tune.errors import UserError
from vmpo_tune.search.spec import default_params, load_spec, params_to_config
from vmpo_tune.search.studyedit import scalar_text, set_defaults

from .search_helpers import cli, load

# The default's policy_lr wrecks the policy (return 1 on every seed); the queued configuration survives the whole
# episode (50): the confirmed winner is trial 1, ahead of the default on every seed.
STUDY_TEXT = """\
# A toy study for the adopt tests: this comment and the aligned columns below must survive.
description: toy study for tests
env_id: tests.toy_envs:Survive-v0
total_steps: 512
evaluation: {interval: 256, episodes: 2}
train: {num_envs: 1, rollout_steps: 64}
agent: {policy_layer_sizes: [16], value_layer_sizes: [16], m_steps: 2}
search_space:
  policy_lr:   {choices: [1.0e-4, 10.0], default: 10.0}   # the default wrecks the policy
  epsilon_eta:                                              # block style, no default yet
    low: 0.001
    high: 0.1
    log: true
sampler: {name: random}
pruner: {name: median, n_startup_trials: 1, n_warmup_steps: 0}
"""
RUN = ("--study", "toy", "--run-dir", "run")


def test_set_defaults_changes_the_default_values_and_nothing_else():
    text = STUDY_TEXT.replace("log: true\n", "log: true\n    when: {policy_lr: 10.0}\n")
    new = set_defaults(text, {"policy_lr": 1.0e-4, "epsilon_eta": 1.0e-5}, "toy.yaml")
    assert (
        new.splitlines()
        == [
            *text.splitlines()[:8],
            "  policy_lr:   {choices: [1.0e-4, 10.0], default: 0.0001}   # the default wrecks the policy",
            *text.splitlines()[9:14],
            "    default: 1.0e-05",  # a new last line of the block mapping; not "1e-05", which YAML 1.1 reads as text
            *text.splitlines()[14:],
        ]
    )
    assert yaml.safe_load(new)["search_space"]["epsilon_eta"]["default"] == 1.0e-5
    edited = {  # each layout a hand-written file may have, and what adding a default makes of it
        "search_space:\n  x: {low: 1, high: 2 }  # c\n": "search_space:\n  x: {low: 1, high: 2, default: 1.5 }  # c\n",
        "search_space:\n  x: {low: 1, high: 2,}\n": "search_space:\n  x: {low: 1, high: 2, default: 1.5,}\n",
        "search_space:\n  x: {low: 1,\n      high: 2  # why\n  }\n": (
            "search_space:\n  x: {low: 1,\n      high: 2, default: 1.5  # why\n  }\n"
        ),
        "search_space:\n  x:\n    low: 1\n    default:\n": "search_space:\n  x:\n    low: 1\n    default: 1.5\n",
        "search_space:\r\n  x:\r\n    low: 1\r\n  y: {low: 1}\r\n": (
            "search_space:\r\n  x:\r\n    low: 1\r\n    default: 1.5\r\n  y: {low: 1}\r\n"
        ),
        "search_space:\n  x:\n    when:\n      a: b\n\n  # about y\n  y: {low: 1}\n": (
            "search_space:\n  x:\n    when:\n      a: b\n    default: 1.5\n\n  # about y\n  y: {low: 1}\n"
        ),
    }
    for text, expected in edited.items():
        assert set_defaults(text, {"x": 1.5}, "f.yaml") == expected
    for value in (1.0e-5, 0.9976, 16, True, "gae", "yes", -0.0):
        assert yaml.safe_load(scalar_text(value)) == value and type(yaml.safe_load(scalar_text(value))) is type(value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("agent: {}\n", "has no search_space"),
        ("search_space:\n  y: {low: 1, high: 2}\n", "search_space.x is not a mapping"),
        ("search_space:\n  y: &p {low: 1, high: 2}\n  x: *p\n", "shared with another parameter"),
        ("search_space:\n  x: &p {low: 1, high: 2}\n  y: *p\n", "shared with another parameter"),
        ("d: &d 1.5\nsearch_space:\n  x: {low: 1, high: 2, default: *d}\n", "anchor or alias"),
        ("search_space:\n  x: {low: 1, default: &d 1.0}\n  y: {low: 1, default: *d}\n", "anchor or alias"),
        ("search_space:\n  y: &a {low: 1, high: 2}\n  x: {<<: *a}\n", "merge key"),
        ("search_space:\n  x: {low: 1, default: [1]}\n", "not a plain value"),
    ],
)
def test_a_file_that_cannot_be_edited_in_place_is_one_line(text, problem):
    with pytest.raises(UserError, match=problem) as caught:
        set_defaults(text, {"x": 1.5}, "f.yaml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("f.yaml")


def _adopt(root, *args):
    return cli("vmpo_tune.adopt", *RUN, *args, cwd=root)


def _stored(url: str) -> list:
    """What the study and its confirmation hold: attributes, and each trial's state, values and attributes."""
    studies = (load(url), load(url, records.confirm_study_name("toy")))
    return [
        (s.user_attrs, [(t.state, t.params, t.values, t.user_attrs, t.system_attrs) for t in s.get_trials()])
        for s in studies
    ]


def _one_line_exit_2(proc, text):
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and text in proc.stderr, proc.stderr


def test_the_confirmed_winner_becomes_the_study_default(tmp_path):
    root = tmp_path
    (root / "studies").mkdir()
    study_file = root / "studies" / "toy.yaml"
    study_file.write_text(STUDY_TEXT)
    (root / "good.yaml").write_text("policy_lr: 1.0e-4\nepsilon_eta: 0.0123\n")
    search = cli("vmpo_tune.search", "--study", "toy", "--out", "run", "--trials", "2", "--enqueue", "good.yaml",
                 cwd=root)  # fmt: skip
    assert search.returncode == 0, search.stderr
    url = f"sqlite:///{root / 'run' / 'study.db'}"

    _one_line_exit_2(_adopt(root), "no confirmation yet")
    confirm = cli("vmpo_tune.confirm", *RUN, "--top", "1", "--seeds", "2", cwd=root)
    assert confirm.returncode == 0, confirm.stderr
    winner = records.read_confirmation(load(url))[0]
    assert winner.label == "trial 1" and winner.vs_baseline == "better"
    assert "make it the default: python -m vmpo_tune.adopt --study toy --run-dir run" in confirm.stderr

    # a file of another study (here: other fixed values) is refused; another budget (what search --total-steps
    # overrides) is only noted
    other = root / "other.yaml"
    other.write_text(STUDY_TEXT.replace("m_steps: 2", "m_steps: 3"))
    _one_line_exit_2(
        _adopt(root, "--study-file", "other.yaml"), "does not describe study 'toy' as it was stored (its agent"
    )
    assert other.read_text() == STUDY_TEXT.replace("m_steps: 2", "m_steps: 3")
    _one_line_exit_2(_adopt(root, "--study-file", "missing.yaml"), "--study-file")
    longer = root / "longer.yaml"
    longer.write_text(STUDY_TEXT.replace("total_steps: 512", "total_steps: 1024"))
    noted = _adopt(root, "--study-file", "longer.yaml", "--dry-run")
    assert noted.returncode == 0 and "total_steps 512 (the file: 1024)" in noted.stdout, noted.stdout
    assert "the confirmation's budget 512 env steps (the file: 1,024)" in noted.stdout
    # a file that only widens a range (the next round's file, before its search ran) is noted; a narrower one is
    # another study's
    wider = root / "wider.yaml"
    wider.write_text(STUDY_TEXT.replace("high: 0.1", "high: 0.5"))
    widened = _adopt(root, "--study-file", "wider.yaml", "--dry-run")
    assert widened.returncode == 0, widened.stderr
    assert "a narrower range than the file's (epsilon_eta: 0.001 .. 0.1 -> 0.001 .. 0.5)" in widened.stdout
    (root / "narrower.yaml").write_text(STUDY_TEXT.replace("high: 0.1", "high: 0.05"))
    _one_line_exit_2(
        _adopt(root, "--study-file", "narrower.yaml"), "does not describe study 'toy' as it was stored (its space"
    )

    dry = _adopt(root, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "policy_lr: 10.0 -> 0.0001" in dry.stdout
    assert f"epsilon_eta: {VMPOConfig().epsilon_eta!r} -> 0.0123" in dry.stdout
    assert "wrote nothing" in dry.stdout and study_file.read_text() == STUDY_TEXT

    # a confirmation that did not settle it: refused unless asked for
    study = load(url)
    stored = records.read_confirmation(study)
    for ci, why in [((0.3, 0.9), "includes 1/2"), ((0.1, 0.4), "is behind the default"), ((nan, nan), "no interval")]:
        records.write_confirmation(study, [dataclasses.replace(stored[0], poi_ci=ci), *stored[1:]])
        _one_line_exit_2(_adopt(root), why)
        assert "python -m vmpo_tune.confirm --study toy --run-dir run --seeds 20" in _adopt(root).stderr
    assert study_file.read_text() == STUDY_TEXT
    records.write_confirmation(study, stored)
    records.write_held_out(study, [dataclasses.replace(stored[0], poi_ci=(0.3, 0.9)), stored[1]])
    held_out = _adopt(root, "--dry-run")  # a held-out check that did not resolve the lead: noted
    assert "a held-out check where its lead is unresolved (P(> default) 0.30 to 0.90)" in held_out.stdout
    study.set_user_attr(records.HELD_OUT, None)
    before = _stored(url)

    proc = _adopt(root)
    assert proc.returncode == 0, proc.stderr
    assert "toy.yaml: 2 default(s) set to the confirmed winner's (trial 1: IQM 50.0" in proc.stdout
    text = study_file.read_text()
    assert text.splitlines()[0] == STUDY_TEXT.splitlines()[0]  # the comment, as it was
    assert "  policy_lr:   {choices: [1.0e-4, 10.0], default: 0.0001}   # the default wrecks the policy" in text
    assert _stored(url) == before  # the stored study is only read
    spec = load_spec(str(study_file), check_env=False)
    units = load(url, records.confirm_study_name("toy")).get_trials()
    unit = next(t for t in units if t.user_attrs[records.CANDIDATE] == "trial 1")
    assert params_to_config(spec, default_params(spec)).identity() == records.read_config(unit).identity()
    assert yaml.safe_load(text) == {
        **yaml.safe_load(STUDY_TEXT),
        "search_space": {
            "policy_lr": {"choices": [1.0e-4, 10.0], "default": 1.0e-4},
            "epsilon_eta": {"low": 0.001, "high": 0.1, "log": True, "default": 0.0123},
        },
    }

    again = _adopt(root)
    assert again.returncode == 0 and "already the confirmed winner's" in again.stdout and study_file.read_text() == text

    # the search resumes from the edited file (the defaults are not part of what a stored study must match),
    # and a new search starts from the winner
    resumed = cli("vmpo_tune.search", "--study", "toy", "--out", "run", "--trials", "2", cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    assert "vmpo_tune.adopt" not in resumed.stderr  # done: no longer suggested
    fresh = cli("vmpo_tune.search", "--study", "toy", "--out", "fresh", "--trials", "1", cwd=root)
    assert fresh.returncode == 0, fresh.stderr
    first = load(f"sqlite:///{root / 'fresh' / 'study.db'}").trials[0]
    assert first.params == {"policy_lr": 1.0e-4, "epsilon_eta": 0.0123} and first.value == 50.0


def test_a_study_searched_from_a_file_path_is_read_back_by_that_path(tmp_path):
    """``search --study path/toy.yaml`` stores study ``toy`` under runs/toy; confirm, export and adopt take the same
    ``--study`` (the name is the file's stem, the default run folder follows it) and adopt writes into that file."""
    (tmp_path / "elsewhere").mkdir()
    study_file = tmp_path / "elsewhere" / "toy.yaml"
    study_file.write_text(STUDY_TEXT)
    (tmp_path / "good.yaml").write_text("policy_lr: 1.0e-4\nepsilon_eta: 0.0123\n")
    given = ("--study", "elsewhere/toy.yaml")
    search = cli("vmpo_tune.search", *given, "--trials", "2", "--enqueue", "good.yaml", cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    assert (tmp_path / "runs" / "toy" / "study.db").is_file()
    confirm = cli("vmpo_tune.confirm", *given, "--top", "1", "--seeds", "2", cwd=tmp_path)
    assert confirm.returncode == 0, confirm.stderr
    assert records.read_confirmation(load(f"sqlite:///{tmp_path / 'runs' / 'toy' / 'study.db'}"))[0].label == "trial 1"
    export = cli("vmpo_tune.export", *given, cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    assert yaml.safe_load((tmp_path / "toy-best.yaml").read_text())["study"] == "toy"

    _one_line_exit_2(cli("vmpo_tune.adopt", "--study", "moved/toy.yaml", cwd=tmp_path), "--study moved/toy.yaml")
    assert study_file.read_text() == STUDY_TEXT
    adopt = cli("vmpo_tune.adopt", *given, cwd=tmp_path)
    assert adopt.returncode == 0, adopt.stderr
    assert yaml.safe_load(study_file.read_text())["search_space"]["policy_lr"]["default"] == 1.0e-4
    assert not (tmp_path / "studies").exists() and not (tmp_path / "toy.yaml").exists()
