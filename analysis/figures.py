"""The report's plotly figures. Each builder returns a figure or raises :class:`Unavailable`.

Optuna's own plots (history, parallel coordinates, slice, contour) are used as they are;
the learning curves, importances and throughput figures are drawn here.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

STATE_COLOURS = {
    "COMPLETE": "#1f77b4",
    "PRUNED": "#ff7f0e",
    "FAIL": "#d62728",
    "FAIL (retried)": "#c49c94",
    "RUNNING": "#7f7f7f",
    "WAITING": "#bcbd22",
}
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=30, t=50, b=50))


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
        fig.add_trace(go.Scatter(
            x=steps, y=[_finite(trial.intermediate_values[s]) for s in steps], mode="lines+markers",
            name=label, legendgroup=label, showlegend=label not in shown,
            line=dict(color=STATE_COLOURS.get(label, "#7f7f7f"), width=1.5), marker=dict(size=4),
            hovertemplate=f"trial {trial.number} ({label})<br>%{{x:,}} env steps<br>return %{{y:.2f}}<extra></extra>",
        ))  # fmt: skip
        shown.add(label)
    fig.update_layout(title="Learning curves", xaxis_title="env steps", yaxis_title="evaluation return",
                      legend_title="state", **LAYOUT)  # fmt: skip
    return fig


def optimization_history(study: optuna.Study) -> go.Figure:
    fig = optuna.visualization.plot_optimization_history(study, target_name="evaluation return")
    fig.update_layout(**LAYOUT)
    return fig


def param_importances(study: optuna.Study) -> tuple[dict[str, float], list[str]]:
    """Optuna's default importance evaluator; returns the importances and any warnings it gave."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        raise Unavailable(f"Parameter importances need at least two complete trials; this study has {len(complete)}.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importances = optuna.importance.get_param_importances(study)
    if not importances:
        raise Unavailable("No parameter was sampled in every complete trial, so there are no importances.")
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
             and not issubclass(w.category, optuna.exceptions.ExperimentalWarning)]  # fmt: skip
    return importances, notes


def importance_bars(importances: dict[str, float]) -> go.Figure:
    names = list(importances)[::-1]  # most important at the top
    fig = go.Figure(go.Bar(x=[importances[n] for n in names], y=names, orientation="h",
                           marker_color=STATE_COLOURS["COMPLETE"],
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))  # fmt: skip
    fig.update_layout(title="Parameter importances", xaxis_title="importance (share of the total)",
                      height=max(300, 60 + 40 * len(names)), **LAYOUT)  # fmt: skip
    fig.update_yaxes(automargin=True)
    return fig


def parallel_coordinates(study: optuna.Study) -> go.Figure:
    fig = optuna.visualization.plot_parallel_coordinate(study, target_name="evaluation return")
    fig.update_layout(**LAYOUT)
    return fig


def slices(study: optuna.Study) -> go.Figure:
    fig = optuna.visualization.plot_slice(study, target_name="evaluation return")
    fig.update_layout(**LAYOUT)
    return fig


def contour(study: optuna.Study, ranked_params: Sequence[str]) -> go.Figure:
    """Contour of the first two of ``ranked_params`` (the two most important)."""
    if len(ranked_params) < 2:
        raise Unavailable("A contour needs at least two searched parameters; this study has "
                          f"{len(ranked_params)}.")  # fmt: skip
    pair = list(ranked_params[:2])
    fig = optuna.visualization.plot_contour(study, params=pair, target_name="evaluation return")
    fig.update_layout(title=f"Contour of the two most important parameters: {pair[0]} and {pair[1]}", **LAYOUT)
    return fig


def throughput(trials: Sequence[FrozenTrial], retried: set[int]) -> go.Figure:
    """Wall time and env steps per second of each trial, as bars coloured by state."""
    measured = [t for t in sorted(trials, key=lambda t: t.number) if t.user_attrs.get("wall_time_s") is not None]
    if not measured:
        raise Unavailable("No trial has recorded its wall time yet.")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("wall time per trial (s)", "env steps per second"))  # fmt: skip
    labels = [state_label(t, retried) for t in measured]
    shown: set[str] = set()
    for label in dict.fromkeys(labels):
        group = [t for t, lab in zip(measured, labels) if lab == label]
        colour = STATE_COLOURS.get(label, "#7f7f7f")
        numbers = [t.number for t in group]
        fig.add_trace(go.Bar(x=numbers, y=[t.user_attrs.get("wall_time_s") for t in group], name=label,
                             legendgroup=label, marker_color=colour, showlegend=label not in shown,
                             hovertemplate="trial %{x}: %{y:.1f} s<extra></extra>"), row=1, col=1)  # fmt: skip
        fig.add_trace(go.Bar(x=numbers, y=[t.user_attrs.get("env_steps_per_s") for t in group], name=label,
                             legendgroup=label, marker_color=colour, showlegend=False,
                             hovertemplate="trial %{x}: %{y:,.0f} steps/s<extra></extra>"), row=2, col=1)  # fmt: skip
        shown.add(label)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=[t.number for t in measured])
    fig.update_xaxes(title_text="trial", row=2, col=1)
    fig.update_layout(title="Wall time and throughput", barmode="group", height=560, legend_title="state", **LAYOUT)
    return fig
