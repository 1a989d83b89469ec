"""Issue 16: the `hopper` default with its update's matrix products in bfloat16, against the same in float32.

    python benchmarks/precision.py run          # both arms, resumable: rerun to continue
    python benchmarks/precision.py table        # RESULTS.md from what is stored so far
    python benchmarks/precision.py snapshot     # consistent copies of the live storages in results/

``matmul_precision: medium`` (VMPOConfig) lets PyTorch round the inputs of the update's float32 matrix products to
bfloat16 where oneDNN has fast kernels for that (CPUs with AMX or AVX-512 BF16), about four times faster products
on an AMX CPU; everything else stays float32. That changes the arithmetic, so the question is the one issue 16
asks of any default changed for speed: what does it cost in returns?

Two arms, each the shipped `hopper` study file with only ``agent.matmul_precision`` set (``highest``: float32;
``medium``), written to ``runs/precision-hopper/ARM/hopper.yaml`` (so the stored study is `hopper`, as a user's
would be). Each arm trains its default on the tuning seed (``search --trials 1``), then on test seeds 1000-1019
(``confirm --top 1 --seeds 20``; the first ten are the seeds every `hopper` table used): 21 runs of 300k env steps,
through the ordinary commands on the arm's own SQLite file, so a killed campaign continues where it stopped when
rerun.
The live files are under ``runs/``; ``snapshot`` (and the runner, after each step) copies each one consistently to
``results/precision-hopper/``, kept in the repository: on a new machine ``run`` starts from those copies and
``table`` reads them. Runs are bit for bit reproducible only on the same machine and library build: the table
names the CPU, and both arms must run on the same machine for the comparison to be a fair one.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._campaign import backup, cli, continue_from_kept, keep_copies, load_campaign_study  # noqa: E402
from benchmarks._report import write_section  # noqa: E402

STUDY = "hopper"
RESULTS = ROOT / "results" / "precision-hopper"
LIVE = ROOT / "runs" / "precision-hopper"
TEST_SEED_START, SEEDS = 1000, 20
SECTION = "precision-hopper"


@dataclass(frozen=True)
class Arm:
    name: str
    precision: str

    @property
    def run_dir(self) -> Path:
        return LIVE / self.name

    @property
    def study_file(self) -> Path:
        return self.run_dir / f"{STUDY}.yaml"

    @property
    def live_db(self) -> Path:
        return LIVE / f"{self.name}.db"

    @property
    def kept_db(self) -> Path:
        return RESULTS / f"{self.name}.db"


ARMS = (Arm("float32", "highest"), Arm("bfloat16", "medium"))


def write_study_file(arm: Arm) -> None:
    """The shipped study file with only the arm's ``matmul_precision`` set."""
    data = yaml.safe_load((ROOT / "studies" / f"{STUDY}.yaml").read_text())
    data["agent"] = {**(data.get("agent") or {}), "matmul_precision": arm.precision}
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("run", "table", "snapshot"))
    p.add_argument("--workers", type=int, default=2, help="worker processes per step (default 2)")
    p.add_argument("--arms", nargs="+", choices=[a.name for a in ARMS], help="only these arms")
    p.add_argument("--out", default=str(ROOT / "RESULTS.md"))
    p.add_argument("--machine", default=f"the {os.cpu_count()}-core {os.uname().machine} development machine")
    args = p.parse_args()
    if args.command == "snapshot":
        keep_copies((arm.live_db, arm.kept_db) for arm in ARMS)
    elif args.command == "run":
        for arm in ARMS:
            if not args.arms or arm.name in args.arms:
                run_arm(arm, args.workers)
    else:
        from benchmarks.precision_table import render

        data = {arm.name: load_campaign_study(STUDY, arm.kept_db) for arm in ARMS}
        write_section(
            Path(args.out), SECTION, "hopper: the update's products in bfloat16 (issue 16)", render(data, args.machine)
        )


if __name__ == "__main__":
    main()
