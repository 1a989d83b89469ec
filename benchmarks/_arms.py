"""What issue 16's returns campaigns share: arms that are the shipped `hopper` study file with some ``agent`` options
set, each trained on the tuning seed and then confirmed on the same test seeds, through the ordinary commands.

Each arm's study file is written to ``runs/CAMPAIGN/ARM/hopper.yaml`` (so the stored study is `hopper`, as a user's
would be) and its storage is ``runs/CAMPAIGN/ARM.db``. An arm runs ``search --trials 1`` (its default on tuning seed
0), then ``confirm --top 1 --seeds 20`` on test seeds 1000-1019 (the first ten are the seeds every `hopper` table
used): 21 runs of 300k env steps, resumable (rerun to continue). After each step the runner keeps a consistent copy
in ``results/CAMPAIGN/ARM.db``; on a new machine ``run`` starts from those copies. Runs are bit for bit reproducible
only on the same CPU kind and library build, so the arms of one campaign must run on one machine kind: ``run``
refuses a machine of another kind than the kept runs recorded, and when they recorded only the CPU's name (runs
before 2026-12-07) it says how to check (a campaign that reuses another's arm checked that first:
``policy_width_bf16.py``). An arm sets every option the shipped file has changed since the arm ran
(``tests/test_arms_campaigns.py`` checks that each arm's study file gives the configuration its kept storage ran).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._campaign import (  # noqa: E402
    backup,
    check_cpu_kind,
    cli,
    continue_from_kept,
    keep_copies,
    load_campaign_study,
    recorded_cpus,
)
from benchmarks._report import write_section  # noqa: E402
from vmpo_tune.cli_common import run_cli  # noqa: E402

STUDY = "hopper"
RUNS, KEPT = ROOT / "runs", ROOT / "results"  # the live storages and study files; the copies kept in the repository
TEST_SEED_START, SEEDS = 1000, 20
POLICY_256 = (("policy_layer_sizes", [256, 256]),)
"""The option every arm that ran before the `hopper` default's policy became 2 x 128 (2026-12-03) sets, so that
running it again trains what its kept storage holds, whatever the shipped file says now."""
TORCH_ACTING = (("acting", "torch"),)
"""The option every arm that ran before ``acting: numpy`` became the default (2026-12-07) sets, for the same reason."""


@dataclass(frozen=True)
class Arm:
    """One arm: the shipped study file with ``agent`` options set (``options``: (key, value) pairs)."""

    campaign: str
    name: str
    options: tuple[tuple[str, Any], ...]

    @property
    def run_dir(self) -> Path:
        return RUNS / self.campaign / self.name

    @property
    def study_file(self) -> Path:
        return self.run_dir / f"{STUDY}.yaml"

    @property
    def live_db(self) -> Path:
        return RUNS / self.campaign / f"{self.name}.db"

    @property
    def kept_db(self) -> Path:
        return KEPT / self.campaign / f"{self.name}.db"


def write_study_file(arm: Arm) -> None:
    """The shipped study file with only the arm's ``agent`` options set."""
    data = yaml.safe_load((ROOT / "studies" / f"{STUDY}.yaml").read_text())
    data["agent"] = {**(data.get("agent") or {}), **dict(arm.options)}
    arm.run_dir.mkdir(parents=True, exist_ok=True)
    arm.study_file.write_text(yaml.safe_dump(data, sort_keys=False))


def run_arm(arm: Arm, workers: int) -> None:
    continue_from_kept(arm.live_db, arm.kept_db)
    write_study_file(arm)
    where = ["--storage", f"sqlite:///{arm.live_db}", "--workers", str(workers)]
    study = ["--study", str(arm.study_file)]
    cli("vmpo_tune.search", *study, "--trials", "1", "--out", str(arm.run_dir), *where)
    backup(arm.live_db, arm.kept_db)
    confirm = [*study, "--run-dir", str(arm.run_dir), "--top", "1", "--seeds", str(SEEDS)]
    cli("vmpo_tune.confirm", *confirm, "--test-seed-start", str(TEST_SEED_START), *where)
    backup(arm.live_db, arm.kept_db)


@dataclass(frozen=True)
class Labels:
    """How a campaign's section names things: ``intro`` (what the arms are), ``column`` (the header of the arms'
    column), ``rows`` (each arm's row label), ``names`` (each arm's name in the probability line) and ``script`` (the
    campaign's script, for the commands)."""

    intro: str
    column: str
    rows: Mapping[str, str]
    names: Mapping[str, str]
    script: str


@dataclass(frozen=True)
class Campaign:
    """Two arms (the first is the one the second is compared with) and the RESULTS.md section they fill."""

    arms: tuple[Arm, Arm]
    section: str
    title: str
    labels: Labels

    def render(self, data: dict[str, dict[str, Any] | None], machine: str) -> str:
        from benchmarks.arms_table import render_two_arms

        return render_two_arms(self.arms, data, machine, self.labels)

    def main(self, doc: str, argv=None) -> None:
        """The command line: ``run`` (the arms, resumable), ``table`` (the RESULTS.md section from the kept
        storages), ``snapshot`` (consistent copies of the live storages)."""
        _main(self, doc, argv)


def _check_machine(campaign: Campaign) -> int:
    """Refuse (:class:`UserError`) a machine of another CPU kind than the campaign's kept runs; print the note when
    they cannot tell."""
    recorded = {cpu for arm in campaign.arms for cpu in recorded_cpus(load_campaign_study(STUDY, arm.kept_db))}
    note = check_cpu_kind(campaign.section, recorded)
    if note:
        print(note, flush=True)
    return 0


def _main(campaign: Campaign, doc: str, argv) -> None:
    arms = campaign.arms
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("run", "table", "snapshot"))
    p.add_argument("--workers", type=int, default=2, help="worker processes per step (default 2)")
    p.add_argument("--arms", nargs="+", choices=[a.name for a in arms], help="only these arms")
    p.add_argument("--out", default=str(ROOT / "RESULTS.md"))
    p.add_argument("--machine", default=f"the {os.cpu_count()}-core {os.uname().machine} development machine")
    args = p.parse_args(argv)
    if args.command == "snapshot":
        keep_copies((arm.live_db, arm.kept_db) for arm in arms)
    elif args.command == "run":
        if code := run_cli(lambda: _check_machine(campaign), debug=False):  # another CPU kind: one line, exit 2
            raise SystemExit(code)
        for arm in arms:
            if not args.arms or arm.name in args.arms:
                run_arm(arm, args.workers)
    else:
        data = {arm.name: load_campaign_study(STUDY, arm.kept_db) for arm in arms}
        write_section(Path(args.out), campaign.section, campaign.title, campaign.render(data, args.machine))
