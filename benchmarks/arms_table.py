"""The RESULTS.md section of a two-arm returns campaign (:mod:`benchmarks._arms`), read from the kept storages."""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from benchmarks._arms import KEPT, SEEDS, TEST_SEED_START, Arm, Labels
from benchmarks._campaign import results_per_candidate
from vmpo_tune import records
from vmpo_tune.stats import bootstrap_ci, iqm, poi_ci, probability_of_improvement

RUNS_PER_ARM = 1 + SEEDS  # the tuning seed, the test seeds
HALF = SEEDS // 2  # the first half of the test seeds (1000-1009) are those every `hopper` table used
FIRST = f"{TEST_SEED_START}-{TEST_SEED_START + HALF - 1}"
SECOND = f"{TEST_SEED_START + HALF}-{TEST_SEED_START + SEEDS - 1}"


def _by_seed(ranked: list) -> dict[int, float]:
    """Final return per seed of the default (the only candidate of a ``--top 1`` confirmation of one trial)."""
    return dict(zip(ranked[0].seeds, ranked[0].final_returns)) if ranked else {}


def _progress(data: dict | None) -> int:
    if not data:
        return 0
    search = sum(t.state.is_finished() and t.value is not None for t in data["trials"])
    return search + sum(results_per_candidate(data).values())


def _spent(data: dict) -> list[float]:
    """CPU seconds of each of the arm's runs' own work (as recorded)."""
    units = [*data["trials"], *data["units"]]
    return [s for s in (u.user_attrs.get(records.COMPUTE_CPU) for u in units) if s]


def _cpu(data: dict) -> str:
    """The CPU the arm's runs recorded in their provenance: its kind where they recorded that (as "AMD EPYC with
    AVX512 avx512_bf16"), else its name."""
    recorded = [u.user_attrs.get(records.PROVENANCE) or {} for u in data["units"]]
    names = {(p.get("cpu_kind") or "").replace("; ", " with ", 1).replace("; ", ", ") or p.get("cpu") for p in recorded}
    return " and ".join(sorted(n for n in names if n)) or "not recorded"


def _ran_on(data: dict[str, dict[str, Any] | None]) -> str:
    """The days the arms' runs finished on."""
    days = sorted({u.datetime_complete.date() for d in data.values() for u in d["units"] if u.datetime_complete})
    return f"{days[0]}" if days[0] == days[-1] else f"{days[0]} to {days[-1]}"


def _ci(values: list[float], statistic: str) -> str:
    lo, hi = bootstrap_ci(values, statistic)
    return f"[{lo:,.0f}, {hi:,.0f}]"


def _row(label: str, data: dict) -> tuple[str, list[float]]:
    by_seed = _by_seed(data["confirmation"])
    every = [by_seed[s] for s in sorted(by_seed)]
    first, second = every[:HALF], every[HALF:]
    score = data["trials"][0].value
    cells = [
        label,
        f"{iqm(first):,.0f} {_ci(first, 'iqm')}",
        f"{iqm(second):,.0f} {_ci(second, 'iqm')}",
        f"**{iqm(every):,.0f}** {_ci(every, 'iqm')}",
        f"{statistics.fmean(every):,.0f} {_ci(every, 'mean')}",
        f"{min(every):,.0f} to {max(every):,.0f}",
        " ".join(f"{r:,.0f}" for r in first) + "; " + " ".join(f"{r:,.0f}" for r in second),
        f"{score:,.0f}",
        f"{statistics.median(_spent(data)):,.0f}",
    ]
    return "| " + " | ".join(cells) + " |", every


def render_two_arms(arms: Sequence[Arm], data: dict[str, dict[str, Any] | None], machine: str, labels: Labels) -> str:
    """The section: each arm's IQM over the test seeds (both halves and all), P(the second arm beats the first on a
    fresh seed), where and when the runs ran; while runs are missing, how far each arm got and how to continue."""
    run = f"python {labels.script} run"
    kept = " and ".join(f"`{d.relative_to(KEPT.parent)}/`" for d in dict.fromkeys(arm.kept_db.parent for arm in arms))
    done = {arm.name: _progress(data[arm.name]) for arm in arms}
    lines = [
        "Hopper-v5, 300,000 env steps per run, final deterministic evaluation (10 episodes). "
        + labels.intro
        + f" Seeds: tuning seed 0, test seeds {TEST_SEED_START}-{TEST_SEED_START + SEEDS - 1} (`confirm --top 1 "
        f"--seeds {SEEDS}`; {FIRST} are the test seeds of every other `hopper` table). Machine: {machine}.",
        "",
    ]
    if any(n < RUNS_PER_ARM for n in done.values()):
        progress = ", ".join(f"{name} {n} of {RUNS_PER_ARM}" for name, n in done.items())
        return "\n".join([*lines, f"Runs so far: {progress}. Continue with `{run}` (resumable)."])
    lines += [
        f"| {labels.column} | seeds {FIRST}: IQM [95% CI] | seeds {SECOND}: IQM [95% CI] | "
        f"all {SEEDS} seeds: IQM [95% CI] | mean [95% CI] | min to max | per seed ({FIRST}; {SECOND}) | "
        "tuning seed 0 | CPU-s per run (median) |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    rows = {arm.name: _row(labels.rows[arm.name], data[arm.name]) for arm in arms}
    lines += [row for row, _ in rows.values()]
    base, other = arms
    x, y = rows[other.name][1], rows[base.name][1]
    lo, hi = poi_ci(x, y)
    lines += [
        "",
        f"P({labels.names[other.name]} beats {labels.names[base.name]} on a fresh seed), over all {SEEDS} seeds: "
        f"**{probability_of_improvement(x, y):.2f}** [{lo:.2f}, {hi:.2f}] (0.5: no difference).",
        "",
        f"Runs: {_ran_on(data)}. CPU: {_cpu(data[base.name])} ({base.name}); {_cpu(data[other.name])} "
        f"({other.name}). Simulator: "
        + "; ".join(f"{data[a.name]['simulator'] or 'not recorded'} ({a.name})" for a in arms)
        + f". Reproduce: `{run}` ({sum(sum(_spent(data[a.name])) for a in arms) / 3600:.1f} CPU hours here; "
        f"both arms on one machine kind), then `python {labels.script} table`. Storage kept in {kept}.",
    ]
    return "\n".join(lines)
