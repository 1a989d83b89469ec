"""The report's plotly figures. Each builder returns a figure or raises :class:`Unavailable`.

Optuna's own plots (history, parallel coordinates, contour) are used as they are; the
learning curves, slices (wrapped in a grid that fits the page), importances, throughput
and the confirmation's figures are drawn here.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import optuna
import plotly.graph_objects as go
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

from vmpo_tune import records
from vmpo_tune.stats import CandidateStats

STATE_COLOURS = {
    "COMPLETE": "#1f77b4",
    "PRUNED": "#ff7f0e",
    "FAIL": "#d62728",
    "FAIL (retried)": "#c49c94",
    "RUNNING": "#7f7f7f",
    "WAITING": "#bcbd22",
}
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=30, t=50, b=50))
BASELINE_COLOUR = "#7f7f7f"
MIN_TRIALS_FOR_IMPORTANCE = 10
"""Fewer complete trials than this give importances and contours that mostly show noise: they are withheld."""
POI_AXIS_MARGIN = 0.05
"""Room on either side of the probability axis [0, 1], so that a marker at 0 or 1 is drawn whole."""
SLICE_COLUMNS = 3


class Unavailable(Exception):
    """A plot that cannot be drawn from this study (the message says why, for the report)."""


def state_label(trial: FrozenTrial, retried: set[int]) -> str:
    if trial.state == TrialState.FAIL and trial.number in retried:
        return "FAIL (retried)"
    return trial.state.name


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def learning_curves(trials: Sequence[FrozenTrial], retried: set[int]) -> go.Figure:
    """Every trial's intermediate values (x = env steps, y = evaluation return), coloured by state."""
    with_curve = [t for t in trials if t.intermediate_values]
    if not with_curve:
        raise Unavailable("No trial has reported an evaluation yet, so there are no learning curves.")
    fig = go.Figure()
    shown: set[str] = set()
    for trial in sorted(with_curve, key=lambda t: t.number):
        label = state_label(trial, retried)
        steps = sorted(trial.intermediate_values)
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[_finite(trial.intermediate_values[s]) for s in steps],
                mode="lines+markers",
                name=label,
                legendgroup=label,
                showlegend=label not in shown,
                line=dict(color=STATE_COLOURS.get(label, "#7f7f7f"), width=1.5),
                marker=dict(size=4),
                hovertemplate=f"trial {trial.number} ({label})<br>%{{x:,}} env steps<br>"
                "return %{y:.2f}<extra></extra>",
            )
        )
        shown.add(label)
    fig.update_layout(
        title="Learning curves",
        xaxis_title="env steps",
        yaxis_title="evaluation return",
        legend_title="state",
        **LAYOUT,
    )
    return fig


def optimization_history(study: optuna.Study) -> go.Figure:
    fig = optuna.visualization.plot_optimization_history(study, target_name="evaluation return")
    fig.update_layout(**LAYOUT)
    return fig


def importances_withheld(n_complete: int) -> str:
    """Why the importances and the contour are missing: the threshold, and how far the study is from it."""
    return (
        f"Parameter importances and the contour of the two most important parameters need at least "
        f"{MIN_TRIALS_FOR_IMPORTANCE} complete trials; this study has {n_complete}. With fewer, a ranking of "
        "parameters mostly reflects noise. Run more trials."
    )


def param_importances(study: optuna.Study) -> tuple[dict[str, float], list[str]]:
    """Optuna's default importance evaluator; returns the importances and any warnings it gave."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        raise Unavailable(importances_withheld(len(complete)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importances = optuna.importance.get_param_importances(study)
    if not importances:
        raise Unavailable("No parameter was sampled in every complete trial, so there are no importances.")
    notes = [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning) and not issubclass(w.category, optuna.exceptions.ExperimentalWarning)
    ]
    return importances, notes


def importance_bars(importances: dict[str, float], conditional: dict[str, str] | None = None) -> go.Figure:
    """Horizontal bars, most important on top; a conditional parameter's label says when it is sampled."""
    conditional = conditional or {}
    names = list(importances)[::-1]  # most important at the top
    labels = [f"{n} (only when {conditional[n]})" if n in conditional else n for n in names]
    fig = go.Figure(
        go.Bar(
            x=[importances[n] for n in names],
            y=labels,
            orientation="h",
            marker_color=STATE_COLOURS["COMPLETE"],
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Parameter importances",
        xaxis_title="importance (share of the total)",
        height=max(300, 60 + 40 * len(names)),
        **LAYOUT,
    )
    fig.update_yaxes(automargin=True)
    return fig


def parallel_coordinates(study: optuna.Study) -> go.Figure:
    fig = optuna.visualization.plot_parallel_coordinate(study, target_name="evaluation return")
    fig.update_layout(**LAYOUT)
    return fig


def slices(study: optuna.Study, columns: int = SLICE_COLUMNS) -> go.Figure:
    """One small scatter per parameter (value vs return of each complete trial), wrapped ``columns`` per row."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    names = sorted({p for t in complete for p in t.params})
    if not names:
        raise Unavailable("No complete trial has sampled parameters, so there are no slice plots.")
    rows = math.ceil(len(names) / columns)
    fig = make_subplots(
        rows=rows, cols=columns, subplot_titles=names, vertical_spacing=0.5 / rows, horizontal_spacing=0.08
    )
    for i, name in enumerate(names):
        row, col = divmod(i, columns)
        have = [t for t in complete if name in t.params]
        fig.add_trace(
            go.Scatter(
                x=[t.params[name] for t in have],
                y=[t.value for t in have],
                mode="markers",
                showlegend=False,
                marker=dict(color=[t.number for t in have], colorscale="Blues", size=7, line=dict(width=0.5)),
                hovertemplate=f"{name} %{{x}}<br>return %{{y:.1f}}<br>trial %{{text}}<extra></extra>",
                text=[t.number for t in have],
            ),
            row=row + 1,
            col=col + 1,
        )
        dist = have[0].distributions[name]
        if isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log:
            fig.update_xaxes(type="log", row=row + 1, col=col + 1)
        elif isinstance(dist, CategoricalDistribution):
            fig.update_xaxes(type="category", row=row + 1, col=col + 1)
    fig.update_yaxes(title_text="return", col=1)
    fig.update_layout(
        title=f"Slice plots ({len(complete)} complete trials; darker = later)", height=260 * rows + 80, **LAYOUT
    )
    return fig


def contour(study: optuna.Study, ranked_params: Sequence[str]) -> go.Figure:
    """Contour of the first two of ``ranked_params`` (the two most important)."""
    if len(ranked_params) < 2:
        raise Unavailable(f"A contour needs at least two searched parameters; this study has {len(ranked_params)}.")
    pair = list(ranked_params[:2])
    fig = optuna.visualization.plot_contour(study, params=pair, target_name="evaluation return")
    fig.update_layout(title=f"Contour of the two most important parameters: {pair[0]} and {pair[1]}", **LAYOUT)
    return fig


def throughput(trials: Sequence[FrozenTrial], retried: set[int]) -> go.Figure:
    """Wall time and env steps per second of each trial, as bars coloured by state."""
    measured = [t for t in sorted(trials, key=lambda t: t.number) if t.user_attrs.get(records.WALL_TIME) is not None]
    if not measured:
        raise Unavailable("No trial has recorded its wall time yet.")
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("wall time per trial (s)", "env steps per second"),
    )
    labels = [state_label(t, retried) for t in measured]
    shown: set[str] = set()
    for label in dict.fromkeys(labels):
        group = [t for t, lab in zip(measured, labels) if lab == label]
        colour = STATE_COLOURS.get(label, "#7f7f7f")
        numbers = [t.number for t in group]
        fig.add_trace(
            go.Bar(
                x=numbers,
                y=[t.user_attrs.get(records.WALL_TIME) for t in group],
                name=label,
                legendgroup=label,
                marker_color=colour,
                showlegend=label not in shown,
                hovertemplate="trial %{x}: %{y:.1f} s<extra></extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=numbers,
                y=[t.user_attrs.get(records.ENV_STEPS_PER_S) for t in group],
                name=label,
                legendgroup=label,
                marker_color=colour,
                showlegend=False,
                hovertemplate="trial %{x}: %{y:,.0f} steps/s<extra></extra>",
            ),
            row=2,
            col=1,
        )
        shown.add(label)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=[t.number for t in measured])
    fig.update_xaxes(title_text="trial", row=2, col=1)
    fig.update_layout(title="Wall time and throughput", barmode="group", height=560, legend_title="state", **LAYOUT)
    return fig


# ---------------------------------------------------------------------------- confirmation


def _labels(ranked: Sequence[CandidateStats]) -> list[str]:
    return [c.label for c in ranked][::-1]  # the winner at the top


def baseline_annotation(label: str) -> str:
    """The default's name on a plot: its label when that already says so ("default", "trial 3 (default)")."""
    return label if "default" in label else f"default ({label})"


def _colours(ranked: Sequence[CandidateStats]) -> list[str]:
    return [BASELINE_COLOUR if c.is_baseline else STATE_COLOURS["COMPLETE"] for c in ranked][::-1]


def _ci_bars(rows: Sequence[CandidateStats], key: str) -> dict:
    """Plotly error bars from each row's ``key`` to the ends of its ``key_ci`` interval."""
    return dict(
        type="data",
        symmetric=False,
        array=[getattr(c, f"{key}_ci")[1] - getattr(c, key) for c in rows],
        arrayminus=[getattr(c, key) - getattr(c, f"{key}_ci")[0] for c in rows],
    )


def confirmed_intervals(ranked: Sequence[CandidateStats]) -> go.Figure:
    """IQM of the final return per candidate with its 95% bootstrap CI; the baseline in grey, with a line."""
    rows = ranked[::-1]
    fig = go.Figure(
        go.Scatter(
            x=[c.iqm for c in rows],
            y=_labels(ranked),
            mode="markers",
            marker=dict(size=11, color=_colours(ranked)),
            error_x=_ci_bars(rows, "iqm"),
            hovertemplate="%{y}: IQM %{x:.1f}<extra></extra>",
            showlegend=False,
        )
    )
    for c in ranked:
        if c.is_baseline:
            fig.add_vline(
                x=c.iqm,
                line_dash="dash",
                line_color=BASELINE_COLOUR,
                annotation_text=baseline_annotation(c.label),
            )
    n = ranked[0].n if ranked else 0
    fig.update_layout(
        title=f"Confirmed IQM with 95% bootstrap CI ({n} test seeds per candidate)",
        xaxis_title="IQM of the final evaluation return",
        height=120 + 50 * len(ranked),
        **LAYOUT,
    )
    fig.update_yaxes(automargin=True)
    return fig


def confirmed_seed_returns(ranked: Sequence[CandidateStats]) -> go.Figure:
    """Every test seed's final return, per candidate."""
    fig = go.Figure()
    for c in ranked[::-1]:
        fig.add_trace(
            go.Scatter(
                x=c.returns,
                y=[c.label] * len(c.returns),
                mode="markers",
                showlegend=False,
                marker=dict(size=9, opacity=0.7, color=BASELINE_COLOUR if c.is_baseline else STATE_COLOURS["COMPLETE"]),
                text=[f"seed {s}" for s in c.seeds],
                hovertemplate="%{text}: %{x:.1f}<extra></extra>",
            )
        )
    fig.update_layout(
        title="Final return on each test seed",
        xaxis_title="final evaluation return",
        height=120 + 50 * len(ranked),
        **LAYOUT,
    )
    fig.update_yaxes(automargin=True, categoryorder="array", categoryarray=_labels(ranked))
    return fig


def probability_of_improvement(ranked: Sequence[CandidateStats]) -> go.Figure:
    """P(candidate beats the default on a fresh seed) with its 95% CI; 0.5 is no difference."""
    rows = [c for c in ranked if not c.is_baseline]
    if not rows:
        raise Unavailable("Only the default configuration was confirmed, so there is nothing to compare with it.")
    rows = rows[::-1]
    fig = go.Figure(
        go.Scatter(
            x=[c.poi for c in rows],
            y=[c.label for c in rows],
            mode="markers",
            showlegend=False,
            marker=dict(size=11, color=STATE_COLOURS["COMPLETE"]),
            error_x=_ci_bars(rows, "poi"),
            cliponaxis=False,
            hovertemplate="%{y}: P = %{x:.2f}<extra></extra>",
        )
    )
    fig.add_vline(x=0.5, line_dash="dash", line_color=BASELINE_COLOUR)
    fig.update_layout(
        title="Probability of improving on the default (95% bootstrap CI)",
        xaxis=dict(title="P(candidate > default)", range=[-POI_AXIS_MARGIN, 1 + POI_AXIS_MARGIN], zeroline=False),
        height=120 + 50 * len(rows),
        **LAYOUT,
    )
    fig.update_yaxes(automargin=True)
    return fig


def search_vs_confirmed(ranked: Sequence[CandidateStats]) -> go.Figure:
    """Each candidate's search score against its confirmed IQM; points below the diagonal were optimistic."""
    rows = [c for c in ranked if c.search_score is not None]
    if not rows:
        raise Unavailable("No confirmed candidate has a search score.")
    fig = go.Figure(
        go.Scatter(
            x=[c.search_score for c in rows],
            y=[c.iqm for c in rows],
            mode="markers+text",
            showlegend=False,
            text=[c.label for c in rows],
            textposition="top center",
            marker=dict(size=10, color=[BASELINE_COLOUR if c.is_baseline else STATE_COLOURS["COMPLETE"] for c in rows]),
            error_y=_ci_bars(rows, "iqm"),
            hovertemplate="search %{x:.1f}<br>confirmed IQM %{y:.1f}<extra></extra>",
        )
    )
    low = min(min(c.search_score, c.iqm_ci[0]) for c in rows)
    high = max(max(c.search_score, c.iqm_ci[1]) for c in rows)
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            line=dict(dash="dot", color="#999"),
            name="search = confirmed",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title="Search score vs confirmed IQM (below the diagonal: the search score was optimistic)",
        xaxis_title="search score (tuning seeds)",
        yaxis_title="confirmed IQM (test seeds)",
        **LAYOUT,
    )
    return fig
