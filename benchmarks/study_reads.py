"""What one read of a whole study costs, with and without Optuna's cache of finished trials in front of the database.

    python benchmarks/study_reads.py                 # a 192-trial study copied from the campaign's kept storages
    python benchmarks/study_reads.py --trials 1000

Every worker, and the gRPC proxy's server for all of them, reads whole studies often (the sampler at each ask,
the pruner at each report, the budget count, the progress display). ``open_storage`` puts Optuna's cache in front
of a database (``optuna_private.CachedRDB``), as Optuna's own ``get_storage`` does; a storage without it loads
every trial on every read. The study here is made of finished Hopper trials from
``results/search-efficiency-hopper/`` (their parameters, attributes and learning curves), repeated to the size
asked, in a fresh SQLite file; the CPU seconds of ``get_all_trials`` are measured in this process (median of
``--repeats``), each after one warm-up read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmpo_tune import optuna_private  # noqa: E402

SOURCE = ROOT / "results" / "search-efficiency-hopper" / "tpe-1seed-1.db"


def build(db: Path, n: int) -> None:
    source = optuna.load_study(study_name="hopper-untuned", storage=f"sqlite:///{SOURCE}")
    finished = [t for t in source.get_trials() if t.state.is_finished()]
    study = optuna.create_study(study_name="reads", storage=f"sqlite:///{db}", direction="maximize")
    for i in range(n):
        t = finished[i % len(finished)]
        study.add_trial(
            optuna.trial.create_trial(
                params=t.params, distributions=t.distributions, value=t.value, state=t.state,
                user_attrs=t.user_attrs, system_attrs=t.system_attrs, intermediate_values=t.intermediate_values,
            )
        )  # fmt: skip


def cpu_per_read(storage, study_id: int, repeats: int) -> float:
    storage.get_all_trials(study_id, deepcopy=False)  # warm-up (the cache fills here)
    costs = []
    for _ in range(repeats):
        start = time.process_time()
        storage.get_all_trials(study_id, deepcopy=False)
        costs.append(time.process_time() - start)
    return statistics.median(costs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=192)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "reads.db"
        build(db, args.trials)
        plain = optuna.storages.RDBStorage(f"sqlite:///{db}")
        study_id = plain.get_study_id_from_name("reads")
        cached = optuna_private.CachedRDB(optuna.storages.RDBStorage(f"sqlite:///{db}"))
        without, with_cache = cpu_per_read(plain, study_id, args.repeats), cpu_per_read(cached, study_id, args.repeats)
    print(f"| read of a {args.trials}-trial study | CPU ms (median of {args.repeats}) |")
    print("|---|---:|")
    print(f"| RDBStorage alone | {1000 * without:.1f} |")
    print(f"| behind Optuna's cache of finished trials | {1000 * with_cache:.1f} |")


if __name__ == "__main__":
    main()
