"""The tables and the plot of ``benchmarks/search_efficiency.py``, read from the kept storages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks._campaign import confirmation_done, done_units, load_campaign_study
from benchmarks.search_efficiency import (
    BUDGET_TRIALS,
    CHEAPER,
    CHOSEN,
    CONFIRM_SEEDS,
    CONFIRM_TOP,
    FROM_SHIPPED,
    REFERENCE_STUDY,
    RESULTS,
    ROOT,
    STRATEGIES,
    TEST_SEED_START,
    Arm,
    Cheaper,
)
from vmpo_tune import records
from vmpo_tune.stats import CandidateStats, describe

PLOT = RESULTS / "iqm-vs-cpu-hours.svg"


def load_arm(arm: Arm, db: Path | None = None) -> dict[str, Any] | None:
    """What one arm's storage (the kept copy unless ``db``) holds (:func:`load_campaign_study`)."""
    return load_campaign_study(arm.study, db or arm.kept_db)


def is_confirmed(data: dict | None) -> bool:
    """Whether an arm's confirmation has a result for every candidate on every test seed (the arm is done)."""
    return confirmation_done(data, CONFIRM_SEEDS)


def _final_stats(entry: CandidateStats, baseline: CandidateStats) -> CandidateStats:
    """IQM, CIs and P(> baseline) of ``entry``'s final returns against ``baseline``'s on the shared test seeds."""
    mine = _returns_by_seed(entry)
    seeds = sorted(mine)
    return describe(entry.label, seeds, [mine[s] for s in seeds], _paired(entry, baseline)[1])


def _returns_by_seed(entry: CandidateStats) -> dict[int, float]:
    """A confirmed candidate's final returns by test seed (an averaging objective's ``returns`` are its own
    statistic)."""
    return dict(zip(entry.seeds, entry.final_returns))


def _paired(winner: CandidateStats, other: CandidateStats) -> tuple[list[float], list[float]]:
    mine, theirs = _returns_by_seed(winner), _returns_by_seed(other)
    seeds = sorted(set(mine) & set(theirs))
    return [mine[s] for s in seeds], [theirs[s] for s in seeds]


def _fmt_ci(low: float, high: float, digits: int = 0) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def render(arms: list[Arm], machine: str) -> str:
    loaded = {arm.name: load_arm(arm) for arm in arms}
    reference = loaded.get("reference")
    shipped = reference["confirmation"][0] if reference and reference["confirmation"] else None
    lines = [
        f"`python benchmarks/search_efficiency.py run` then `... table`, on {machine}; Hopper-v5 at the full "
        f"300,000 env steps per run. Each strategy has the same nominal budget ({BUDGET_TRIALS} seed runs: "
        f"{BUDGET_TRIALS} one-seed trials, {BUDGET_TRIALS // 3} three-seed trials, or {BUDGET_TRIALS} racing runs) on "
        "the `hopper-untuned` "
        "study (the `hopper` space, starting from VMPOConfig's untuned defaults); its 3 best distinct trials and "
        f"the untuned default are then trained on the same {CONFIRM_SEEDS} test seeds "
        f"({TEST_SEED_START}-{TEST_SEED_START + CONFIRM_SEEDS - 1}) as the `hopper` default shipped when the "
        "campaign began (the reference; the study file of commit ef8d5c9, before the `from-shipped` arm replaced "
        "it). Winner = the confirmation's best IQM (of the statistic the arm optimised); the table gives "
        "every winner's final return. P(> X) = the probability that the winner's final return beats X's on a "
        "fresh seed, with its 95% bootstrap CI. CPU hours are the runs' wall time on one core each; env steps are "
        "the cost that no other load on the machine can inflate. The simulator column is the MuJoCo release the "
        "arm's runs used (each arm is one release; arms before the switch to the pinned 3.x ran on 4.0.0, whose "
        "Hopper-v5 steps agree with 3.17.0's to within 1e-14, `benchmarks/simulator_diff.py`). The "
        "`from-shipped` arm runs the chosen strategy on the `hopper` study from its shipped default, which it "
        "confirms beside its winner on the same seeds: its P(> shipped default) is from that, on one simulator "
        "release; its winner is the `hopper` study's default since 2026-11-30 (RESULTS.md, hopper). The stored "
        "studies "
        f"are in `{RESULTS.relative_to(ROOT)}/`.",
        "",
        "| arm | search (finished / target) | winner | confirmed IQM [95% CI] | P(> untuned default) [CI] | "
        "P(> shipped default) [CI] | search env steps | search CPU h | confirm CPU h | simulator |",
        "|---|---:|---|---|---|---|---:|---:|---:|---|",
    ]
    points: list[tuple[str, float, float, tuple[float, float]]] = []
    cheaper = {c.arm for c in CHEAPER}
    for arm in arms:
        if arm.name not in cheaper:
            lines.append(_row(arm, loaded[arm.name], shipped, points))
    if shipped is not None:
        points.append(("shipped default", 0.0, shipped.iqm, shipped.iqm_ci))
    if points:
        _plot(points, PLOT)
        lines += ["", f"![confirmed IQM against CPU hours]({PLOT.relative_to(ROOT)})"]
    for c in CHEAPER:
        if c.arm in loaded:
            lines += ["", *cheaper_section(c, loaded[c.arm], loaded.get(FROM_SHIPPED))]
    return "\n".join(lines)


def _agent(data: dict, label: str) -> dict | None:
    """The agent configuration a confirmed candidate trained with (from its confirmation units)."""
    for unit in data["units"]:
        if unit.user_attrs.get(records.CANDIDATE) == label:
            return unit.user_attrs[records.CONFIG]["agent"]
    return None


def _layers(sizes: list[int]) -> str:
    return f"{len(sizes)} x {sizes[0]}" if len(set(sizes)) == 1 else ", ".join(map(str, sizes))


def _cost_columns(agent: dict | None) -> str:
    """``m_steps | hidden layers`` of one candidate: what its update costs per env step."""
    if agent is None:
        return "? | ?"
    policy, value = (_layers(agent[k]) for k in ("policy_layer_sizes", "value_layer_sizes"))
    return f"{agent['m_steps']} | {policy if policy == value else f'{policy} / {value}'}"


def cheaper_section(cheaper: Cheaper, data: dict | None, from_shipped: dict | None) -> list[str]:
    """One :data:`CHEAPER` arm against the `hopper` default (the `from-shipped` arm's winner), paired by test seed:
    can the default's trials be that much cheaper (issue 16's speed target) without losing returns?"""
    name = cheaper.arm
    head = [
        f"Cheaper trials (`{name}`, issue 16): the chosen strategy on the `{cheaper.study}` study, the `hopper` space "
        f"with {cheaper.space}, from the `hopper` default {cheaper.start}; its {CONFIRM_TOP} best distinct trials "
        f"and that start confirmed on the same test seeds, each set against the `hopper` default itself (the "
        f"`{FROM_SHIPPED}` arm's winner), paired by test seed.",
        "",
    ]
    if data is None:
        return [*head, f"`{name}`: not started."]
    if not is_confirmed(data):
        state = f"confirmation: {done_units(data)[0]} units done" if data["units"] else "search running"
        target = BUDGET_TRIALS // STRATEGIES[CHOSEN][0]
        return [*head, f"`{name}`: {data['finished']} / {target} trials finished ({state})."]
    bar = from_shipped["confirmation"][0] if from_shipped and is_confirmed(from_shipped) else None
    cost = (
        f"Search: {data['finished']} trials, {records.env_steps(data['trials']) / 1e6:.1f}M env steps, "
        f"{records.cpu_hours(data['trials']):.2f} CPU h; confirmation {records.cpu_hours(data['units']):.2f} CPU h; "
        f"{data['simulator']}."
    )
    lines = [
        *head,
        cost,
        "",
        "| candidate | m_steps | hidden layers | confirmed IQM [95% CI] | P(> `hopper` default) [CI] | "
        "final return per test seed |",
        "|---|---:|---|---|---|---|",
    ]
    if bar is not None:
        per_seed = " ".join(f"{v:.0f}" for _, v in sorted(_returns_by_seed(bar).items()))
        lines.append(
            f"| `hopper` default ({bar.label} of `{FROM_SHIPPED}`) | {_cost_columns(_agent(from_shipped, bar.label))} "
            f"| {bar.iqm:.0f} {_fmt_ci(*bar.iqm_ci)} | (the bar) | {per_seed} |"
        )
    for entry in data["confirmation"]:
        final = _final_stats(entry, entry)
        label = f"{entry.label} (the `hopper` default {cheaper.start})" if entry.is_baseline else entry.label
        vs_bar = ""
        if bar is not None:
            s = describe(entry.label, [], *_paired(entry, bar))
            vs_bar = f"{s.poi:.2f} {_fmt_ci(*s.poi_ci, 2)}"
        per_seed = " ".join(f"{v:.0f}" for _, v in sorted(_returns_by_seed(entry).items()))
        lines.append(
            f"| {label} | {_cost_columns(_agent(data, entry.label))} | {final.iqm:.0f} {_fmt_ci(*final.iqm_ci)} | "
            f"{vs_bar} | {per_seed} |"
        )
    return lines


def _row(arm: Arm, data: dict | None, shipped: CandidateStats | None, points: list) -> str:
    """One arm's table row; a confirmed strategy arm also adds its point (and the untuned default's) to ``points``."""
    if data is None:
        return f"| {arm.name} | not started | | | | | | | | |"
    target = 1 if arm.strategy is None else BUDGET_TRIALS // STRATEGIES[arm.strategy][0]
    search_h, confirm_h = records.cpu_hours(data["trials"]), records.cpu_hours(data["units"])
    steps = f"{records.env_steps(data['trials']) / 1e6:.1f}M"
    complete_units = done_units(data)[0]
    ranked = data["confirmation"]
    progress = f"| {arm.name} | {data['finished']} / {target} |"
    if not is_confirmed(data):
        state = f"confirmation: {complete_units} units done" if data["units"] else "search running"
        return f"{progress} ({state}) | | | | {steps} | {search_h:.2f} | {confirm_h:.2f} | {data['simulator']} |"
    winner = ranked[0]  # by the statistic the search optimised (the final return, unless an averaging objective)
    baseline = next(c for c in ranked if c.is_baseline)
    final = _final_stats(winner, baseline)  # every arm is compared on the final return
    vs_untuned, vs_shipped = "", "(the reference)"
    if arm.study == REFERENCE_STUDY and arm.strategy is not None:  # from the shipped default: its own baseline
        vs_shipped = "baseline" if winner is baseline else f"{final.poi:.2f} {_fmt_ci(*final.poi_ci, 2)}"
        points.append((arm.name, search_h + confirm_h, final.iqm, final.iqm_ci))
    elif arm.strategy is not None:
        vs_untuned = "baseline" if winner is baseline else f"{final.poi:.2f} {_fmt_ci(*final.poi_ci, 2)}"
        vs_shipped = ""
        if shipped is not None:
            s = describe(winner.label, [], *_paired(winner, shipped))
            vs_shipped = f"{s.poi:.2f} {_fmt_ci(*s.poi_ci, 2)}"
        points.append((arm.name, search_h + confirm_h, final.iqm, final.iqm_ci))
        if not any(p[0] == "untuned default" for p in points):
            untuned = _final_stats(baseline, baseline)
            points.append(("untuned default", 0.0, untuned.iqm, untuned.iqm_ci))
    return (
        f"{progress} {winner.label} | {final.iqm:.0f} {_fmt_ci(*final.iqm_ci)} | {vs_untuned} | "
        f"{vs_shipped} | {steps} | {search_h:.2f} | {confirm_h:.2f} | {data['simulator']} |"
    )


def _plot(points: list[tuple[str, float, float, tuple[float, float]]], path: Path) -> None:
    """A small hand-written SVG: confirmed IQM (with its CI) against CPU hours, one labelled point per arm."""
    width, height, margin = 640, 400, 60
    x_max = max(1.0, max(p[1] for p in points) * 1.1)
    y_max = max(100.0, max(p[3][1] for p in points) * 1.1)

    def sx(x: float) -> float:
        return margin + (width - 2 * margin) * x / x_max

    def sy(y: float) -> float:
        return height - margin - (height - 2 * margin) * max(0.0, y) / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" y2="{height - margin}" stroke="black"/>',
        f'<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 20}" text-anchor="middle">CPU hours (search + confirmation)</text>',
        f'<text x="15" y="{height / 2}" transform="rotate(-90 15 {height / 2})" text-anchor="middle">'
        "confirmed IQM (10 test seeds, 95% CI)</text>",
    ]
    for i in range(5):
        y = y_max * i / 4
        parts.append(f'<text x="{margin - 5}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.0f}</text>')
        x = x_max * i / 4
        parts.append(f'<text x="{sx(x):.1f}" y="{height - margin + 15}" text-anchor="middle">{x:.1f}</text>')
    for label, x, y, (low, high) in points:
        color = "gray" if "default" in label else "steelblue"
        parts.append(
            f'<line x1="{sx(x):.1f}" y1="{sy(low):.1f}" x2="{sx(x):.1f}" y2="{sy(high):.1f}" stroke="{color}"/>'
        )
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{color}"/>')
        parts.append(f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 6:.1f}">{label}</text>')
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")
