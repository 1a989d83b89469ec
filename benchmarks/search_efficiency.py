"""Does tuning pay? Search strategies against the untuned and the hand-tuned default, confirmed on fresh seeds.

    python benchmarks/search_efficiency.py run            # the whole campaign, resumable: rerun to continue
    python benchmarks/search_efficiency.py table          # BENCHMARKS.md from what is stored so far
    python benchmarks/search_efficiency.py snapshot       # consistent copies of the live storages in results/

The campaign (Hopper-v5, the full 300k steps per run) is a queue of *arms*, run in order:

* ``reference``: the shipped ``hopper`` study's hand-tuned default, trained once on its tuning
  seed and confirmed on the shared test seeds (the bar to beat);
* per repeat (``--repeats``, each with its own study seed: other tuning seeds, other sampler
  draws), each strategy of :data:`STRATEGIES` (TPE with one seed per trial, racing, random
  sampling, TPE with three seeds per trial) on the ``hopper-untuned`` study (the same space,
  starting from VMPOConfig's untuned defaults), with the same nominal env-step budget: a search
  through the ordinary CLI, then ``confirm --top 3`` of its best trials *and the untuned default*
  on the same test seeds for every arm (``--test-seed-start``);
* ``from-shipped``: the strategy the benchmark chose (:data:`CHOSEN`) run on the shipped ``hopper`` study
  itself, starting from its hand-tuned default, with the same budget; confirmed with that default on the same
  test seeds, it says whether tuning improves on the shipped default (a new default ships only if its
  P(improvement) has a lower bound above 0.5). It runs after the last repeat's main strategies and before
  that repeat's extra objective arms (:data:`EXTRAS`).
* the :data:`CHEAPER` arms (last), issue 16's question: the same on a cheaper variant of the ``hopper`` study, from
  the ``hopper`` default made cheaper: ``fast-from-shipped`` (``hopper-fast``: ``m_steps`` at most 8, half the
  update) and ``small-from-shipped`` (``hopper-small``: 2 x 128 hidden layers, a quarter of the 256 x 256
  products). Their winners are confirmed beside their start on the same test seeds, and the table sets them
  against the ``hopper`` default itself (the ``from-shipped`` arm's winner, paired by test seed): can the trials
  be that much cheaper and lose nothing?

Every step is an ordinary ``search`` / ``confirm`` command on the arm's own SQLite file, so a
killed campaign continues where it stopped when rerun (the searches' budgets are exact and
their trials resume from their checkpoints). The live files are under ``runs/`` (with the
checkpoints); ``snapshot`` (and the runner, after each step) copies each one consistently
(SQLite's backup) to ``results/search-efficiency-hopper/``, which is kept in the repository: on a
new machine ``run`` starts from those copies, and ``table`` reads them.

The table gives, per arm, the winner's confirmed IQM with its 95% bootstrap CI, the probability
of improvement (with CI) over the untuned default (from the arm's own confirmation) and over
the shipped default (paired by test seed with the reference arm), and the CPU hours of the
search and of the confirmation; a plot of confirmed IQM against CPU hours goes beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._campaign import backup, cli, continue_from_kept, keep_copies  # noqa: E402
from benchmarks._report import write_section  # noqa: E402

STUDY, REFERENCE_STUDY = "hopper-untuned", "hopper"
RESULTS = ROOT / "results" / "search-efficiency-hopper"
LIVE = ROOT / "runs" / "search-efficiency-hopper"
TEST_SEED_START = 1000  # shared by every arm: disjoint from every repeat's tuning seeds (see study_seed)
CONFIRM_TOP, CONFIRM_SEEDS = 3, 10
BUDGET_TRIALS = 30  # one-seed trials per search (an arm's search and confirmation: about an hour on 2 cores)

# Strategy: (seeds per trial, search flags). The budget is the same number of seed runs for each; in the order
# the campaign runs them (the most telling first).
STRATEGIES = {
    "tpe-1seed": (1, ["--sampler", "tpe", "--pruner", "median"]),
    "racing": (1, ["--sampler", "tpe", "--pruner", "median", "--search", "racing", "--race-seeds", "5"]),
    "random-1seed": (1, ["--sampler", "random", "--pruner", "median"]),
    "tpe-3seeds": (3, ["--sampler", "tpe", "--pruner", "seedmedian"]),
    # the averaging objective (mean of every evaluation): does smoothing the evaluation noise pick better winners?
    "tpe-1seed-auc": (1, ["--sampler", "tpe", "--pruner", "median", "--objective", "auc"]),
}
EXTRAS = ("tpe-1seed-auc",)  # arms beside the four strategies; the last repeat runs them last
CHOSEN = "tpe-1seed"
"""The strategy the studies ship as their default: the only one whose winner matched the shipped default (the table
in BENCHMARKS.md); the ``from-shipped`` arm runs it on the ``hopper`` study."""
FROM_SHIPPED = "from-shipped"


@dataclass(frozen=True)
class Cheaper:
    """An arm of issue 16's question (can the `hopper` default run faster without losing returns?): the chosen
    strategy on a cheaper variant of the `hopper` study, from the `hopper` default made cheaper, confirmed against
    the `hopper` default on the same test seeds."""

    arm: str
    study: str
    space: str  # what makes the study cheaper, as the table says it
    start: str  # how its default differs from the `hopper` default


CHEAPER = (
    Cheaper(
        "fast-from-shipped",
        "hopper-fast",
        "`m_steps` at most 8 (half the `hopper` default's update per env step)",
        "at m_steps 8",
    ),
    Cheaper(
        "small-from-shipped",
        "hopper-small",
        "2 x 128 hidden layers in both networks (a quarter of the `hopper` default's 256 x 256 products per M-step)",
        "with 2 x 128 layers",
    ),
)


@dataclass(frozen=True)
class Arm:
    name: str
    study: str
    strategy: str | None
    repeat: int

    @property
    def live_db(self) -> Path:
        return LIVE / f"{self.name}.db"

    @property
    def kept_db(self) -> Path:
        return RESULTS / f"{self.name}.db"

    @property
    def run_dir(self) -> Path:
        return LIVE / self.name

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.live_db}"


def study_seed(repeat: int) -> int:
    return 100 * repeat  # tuning seeds 0-4, 100-104, ... (racing earns up to 5): never the test seeds 1000-1009


def arms(repeats: int) -> list[Arm]:
    """The queue, in order: the reference, each repeat's strategies, the chosen strategy from the shipped
    default before the last repeat's extra arms, and the chosen strategy on the cheaper spaces last."""
    out = [Arm("reference", REFERENCE_STUDY, None, 0)]
    for repeat in range(repeats):
        out += [Arm(f"{name}-{repeat}", STUDY, name, repeat) for name in STRATEGIES]
    last = [i for i, arm in enumerate(out) if arm.repeat == repeats - 1 and arm.strategy in EXTRAS]
    out.insert(last[0] if last else len(out), Arm(FROM_SHIPPED, REFERENCE_STUDY, CHOSEN, 0))
    return out + [Arm(c.arm, c.study, CHOSEN, 0) for c in CHEAPER]


def run_arm(arm: Arm, workers: int) -> None:
    from benchmarks.search_efficiency_table import is_confirmed, load_arm

    arm.run_dir.mkdir(parents=True, exist_ok=True)
    continue_from_kept(arm.live_db, arm.kept_db)
    done = load_arm(arm, arm.live_db)
    if is_confirmed(done):  # finished (perhaps on another simulator release, which its study would refuse to extend)
        print(f"{arm.name}: confirmed ({done['simulator']}); nothing to run", flush=True)
        return
    where = ["--storage", arm.storage, "--workers", str(workers)]
    if arm.strategy is None:  # the hand-tuned default: its own trial, then its test seeds
        cli("vmpo_tune.search", "--study", arm.study, "--trials", "1", "--out", str(arm.run_dir), *where)
        top = 1
    else:
        seeds, flags = STRATEGIES[arm.strategy]
        search = ["--study", arm.study, "--trials", str(BUDGET_TRIALS // seeds), "--out", str(arm.run_dir), *flags]
        if seeds > 1:
            search += ["--seeds-per-trial", str(seeds)]
        cli("vmpo_tune.search", *search, "--seed", str(study_seed(arm.repeat)), *where)
        backup(arm.live_db, arm.kept_db)
        top = CONFIRM_TOP
    confirm = ["--study", arm.study, "--run-dir", str(arm.run_dir), "--top", str(top)]
    confirm += ["--seeds", str(CONFIRM_SEEDS), "--test-seed-start", str(TEST_SEED_START)]
    cli("vmpo_tune.confirm", *confirm, *where)
    backup(arm.live_db, arm.kept_db)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("run", "table", "snapshot"))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="worker processes per step (default 2)")
    p.add_argument("--arms", nargs="+", help="only these arms (names as in the table), in the queue's order")
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    p.add_argument("--machine", default=f"the {os.cpu_count()}-core {os.uname().machine} development machine")
    args = p.parse_args()
    if args.command == "snapshot":
        keep_copies((arm.live_db, arm.kept_db) for arm in arms(args.repeats))
    elif args.command == "run":
        for arm in arms(args.repeats):
            if not args.arms or arm.name in args.arms:
                run_arm(arm, args.workers)
    else:
        from benchmarks.search_efficiency_table import render

        body = render([arm for arm in arms(args.repeats)], args.machine)
        write_section(Path(args.out), "search-efficiency-hopper", "Search efficiency (hopper): does tuning pay?", body)
        print(body)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
