"""Would the search's median pruner have pruned its own confirmed candidates? The bar against their test seeds.

    python benchmarks/pruning_bar.py results/studies/walker-walk.db --step 300000

Optuna's median pruner stops a trial at ``step`` when its return there is below the median of the *complete*
trials' returns at that step: the survivors of the same rule, so the bar rises as a search goes on. This prints
that bar (over the search's complete trials, or those numbered below ``--trials``) and, for each candidate of the
stored confirmation, its returns at ``step`` on every test seed and on how many of them the bar would have pruned
it. Where a candidate that confirmed well falls below the bar on most seeds, the pruner is selecting for one
tuning seed's early start, not for the final return (studies/walker-walk.yaml quotes it).
"""

from __future__ import annotations

import argparse
import statistics

import optuna

from vmpo_tune import records


def bar(study: optuna.Study, step: int, below: int | None = None) -> tuple[float, int]:
    """(median of the complete trials' returns at ``step``, how many trials it is over)."""
    values = [
        t.intermediate_values[step]
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if step in t.intermediate_values and (below is None or t.number < below)
    ]
    return statistics.median(values), len(values)


def candidates_at(confirm: optuna.Study, step: int) -> dict[str, list[float]]:
    """``{candidate label: returns at step, one per complete test-seed unit, in seed order}``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for unit in confirm.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if step in unit.intermediate_values:
            seed = min(unit.user_attrs.get(records.SEEDS) or [unit.number])
            out.setdefault(unit.user_attrs[records.CANDIDATE], []).append((seed, unit.intermediate_values[step]))
    return {label: [v for _, v in sorted(pairs)] for label, pairs in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("storage", help="a SQLite file or storage URL holding one search and its confirmation")
    p.add_argument("--step", type=int, required=True, help="the pruner's step (its n_warmup_steps, or later)")
    p.add_argument("--trials", type=int, default=None, help="only the search's trials numbered below this")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = args.storage if "://" in args.storage else f"sqlite:///{args.storage}"
    (name,) = [n for n in optuna.get_all_study_names(url) if not records.is_companion(n)]
    level, n = bar(optuna.load_study(study_name=name, storage=url), args.step, args.trials)
    print(f"{name}: the median pruner's bar at {args.step:,} steps: {level:.1f} (median of {n} complete trials)")
    confirm = optuna.load_study(study_name=records.confirm_study_name(name), storage=url)
    rows = sorted(candidates_at(confirm, args.step).items(), key=lambda kv: -statistics.median(kv[1]))
    for label, values in rows:
        pruned = sum(v < level for v in values)
        shown = " ".join(f"{v:.0f}" for v in values)
        print(f"  {label}: pruned on {pruned} of {len(values)} test seeds; at {args.step:,} steps: {shown}")


if __name__ == "__main__":
    main()
