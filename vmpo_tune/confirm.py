"""python -m vmpo_tune.confirm: train a study's best configurations and its default again, on fresh seeds.

Takes the K best distinct complete trials plus the study's documented default (the
baseline), trains each on N test seeds that no trial used, through the same worker
processes and storage as the search (many machines can share it; a rerun resumes it),
and ends with a table ranked by the IQM of the final return, with 95% bootstrap
confidence intervals, the probability of improving on the default, and how optimistic
each trial's search score was. Export, the report and the dashboard note then show the
confirmed winner.

The confirmed winner was chosen on those test seeds among K, so its numbers there flatter it.
``--held-out`` trains the confirmed winner and the default once more, on seeds neither the
search nor the confirmation used (study seed + 2000, ...), in a companion study of their own,
and ends with the same table: a number nothing chose. Export then records it beside the
confirmed statistics.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import next_steps, records, simulator, stored_study, tblog
from .cli_common import Parser, add_common_flags, configure_logging, positive_int, run_cli
from .cli_flags import add_stored_study_flags
from .errors import UserError
from .search.confirmation import HELD_OUT_SEED_OFFSET, TEST_SEED_OFFSET
from .search.launch import WORKERS_PER_CORE, check_worker_count, prepare_folders
from .search.liveness import GRACE_PERIOD, HEARTBEAT_INTERVAL, check_liveness
from .search.settings import WorkerSettings, quiet_library_noise
from .search.stage import confirmation_exit_code, format_table, run_confirmation
from .storage_faults import PATIENCE
from .storage_urls import resolve_url

log = logging.getLogger("vmpo_tune.confirm")

TOP = 3


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m vmpo_tune.confirm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_stored_study_flags(p, artifacts=True)
    p.add_argument("--top", type=positive_int, help=f"confirm the K best distinct trials (default {TOP})")
    p.add_argument(
        "--held-out",
        action="store_true",
        help="train the confirmed winner and the default again on seeds neither the search nor the confirmation "
        f"used (default: study seed + {HELD_OUT_SEED_OFFSET}, ...)",
    )
    p.add_argument("--seeds", type=positive_int, default=10, help="test seeds per candidate (default 10)")
    p.add_argument(
        "--test-seed-start",
        type=int,
        metavar="S",
        help=f"test seeds S, S+1, ... (default: the study seed + {TEST_SEED_OFFSET}, with --held-out + "
        f"{HELD_OUT_SEED_OFFSET}); studies confirmed with the same S share seeds",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="worker processes on this machine (default: one per core; units are independent runs)",
    )
    p.add_argument("--force", action="store_true", help=f"allow more than {WORKERS_PER_CORE} workers per CPU core")
    p.add_argument("--total-steps", type=positive_int, help="env steps per unit (default: the study's budget)")
    p.add_argument("--device", default="cpu", help="torch device for training (default cpu)")
    p.add_argument("--heartbeat-interval", type=positive_int, default=HEARTBEAT_INTERVAL, help=argparse.SUPPRESS)
    p.add_argument("--grace-period", type=positive_int, default=GRACE_PERIOD, help=argparse.SUPPRESS)
    p.add_argument("--patience", type=positive_int, default=int(PATIENCE), help=argparse.SUPPRESS)
    p.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard scalars of every run under DIR")
    add_common_flags(p)
    return p


def confirm(args: argparse.Namespace) -> int:
    if args.held_out and args.top is not None:
        raise UserError("--held-out trains the confirmed winner and the default; drop --top (it picks candidates)")
    simulator.check_clean()
    check_worker_count(args.workers, args.force)
    check_liveness(args.heartbeat_interval, args.grace_period)
    if args.tensorboard:
        tblog.check_available(args.tensorboard)
    run_dir = Path(args.run_dir) if args.run_dir else records.default_run_dir(args.study)
    study, url, storage = stored_study.open_existing_study(args.study, args.storage, run_dir)
    artifact_dir = Path(args.artifact_dir) if args.artifact_dir else records.artifact_dir(args.study, run_dir)
    prepare_folders(run_dir, artifact_dir)
    settings = WorkerSettings(
        spec=None,
        study_name=study.study_name,
        storage_url=resolve_url(url, run_dir),
        n_trials=0,
        out_dir=str(run_dir),
        artifact_dir=str(artifact_dir),
        device=args.device,
        log_level=logging.getLogger().level,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        patience=args.patience,
        tensorboard_dir=args.tensorboard,
    )
    try:
        result = run_confirmation(
            study,
            storage,
            settings,
            top=args.top or TOP,
            seeds=args.seeds,
            total_steps=args.total_steps,
            workers=args.workers,
            first_test_seed=args.test_seed_start,
            held_out=args.held_out,
        )
        check, adopt = next_steps.held_out_pending(study), next_steps.adoptable(study)
    finally:
        storage.close()
    if args.held_out:
        name = records.held_out_study_name(study.study_name)
        print(f"held-out check: the confirmed winner and the default on seeds nothing chose (study {name!r})")
    print(format_table(result.ranked, result.counts, "held-out" if args.held_out else "test"))
    code = confirmation_exit_code(result.outcome)
    if code == 0 and result.ranked:
        flags = next_steps.locating_flags(study.study_name, args.storage and url, args.run_dir)
        lines = next_steps.suggestions(
            study.study_name, flags, confirmed=True, workers=args.workers, held_out=check, adopt=adopt
        )
        for line in lines:
            log.info("next: %s", line)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    quiet_library_noise()
    return run_cli(lambda: confirm(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
