"""The search scores of a stored study's complete trials, grouped by the value of one parameter.

    python benchmarks/param_scores.py --param m_steps results/search-efficiency-hopper/from-shipped.db

Each storage argument is a SQLite file (or any Optuna storage URL) holding one search (and its
confirmation). For each value the parameter took, the line gives the number of complete trials and their scores,
sorted: what a search found about that parameter, with no model in between (BENCHMARKS.md quotes it for
``m_steps``, issue 16).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import optuna

from vmpo_tune.records import is_companion


def grouped(storage: str, param: str) -> dict:
    """``{value: sorted scores}`` of the study's complete trials that have ``param``."""
    (name,) = [n for n in optuna.get_all_study_names(storage) if not is_companion(n)]
    study = optuna.load_study(study_name=name, storage=storage)
    groups: dict = defaultdict(list)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if param in trial.params:
            groups[trial.params[param]].append(trial.value)
    return {value: sorted(scores) for value, scores in sorted(groups.items())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--param", required=True, help="the parameter to group by")
    p.add_argument("storages", nargs="+", help="SQLite files or storage URLs, one study each")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for storage in args.storages:
        url = storage if "://" in storage else f"sqlite:///{storage}"
        print(storage)
        for value, scores in grouped(url, args.param).items():
            shown = " ".join(f"{s:,.0f}" for s in scores)
            print(f"  {args.param}={value}: {len(scores)} complete, best {scores[-1]:,.0f}; {shown}")


if __name__ == "__main__":
    main()
