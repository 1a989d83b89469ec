"""The study's note in optuna-dashboard: what it tunes, env, budget, and the confirmed winner.

The search writes it when it creates a study, and again whenever a stored study has
none (a study created before, or by an older version); the confirmation stage rewrites
it with the confirmed winner and its confidence interval.
"""

from __future__ import annotations

import logging
from typing import Sequence

import optuna

from . import records
from .stats import CandidateStats

log = logging.getLogger(__name__)

CURVES_SENTENCE = (
    "Intermediate values are evaluation returns reported at env-step marks; each complete trial's best "
    "checkpoint and learning curve are its artifacts; videos filmed with `python -m vmpo_tune.play --study` are "
    "the study's."
)


def _steps(n: object) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def study_note(info: records.StudyInfo, n_trials: int | None = None, confirmed: Sequence[CandidateStats] = ()) -> str:
    """Markdown for the study's dashboard note; any :class:`StudyInfo` (even an empty one) gives a note."""
    lines = [f"## {info.name or 'study'}", ""]
    if info.description:
        lines += [info.description, ""]
    tunes = "V-MPO hyperparameters"
    if info.searched_params:
        tunes += ": " + ", ".join(f"`{p}`" for p in info.searched_params)
    lines.append(f"- **Tunes:** {tunes}")
    if info.env_id:
        lines.append(f"- **Environment:** `{info.env_id}`")
    if info.total_steps is not None:
        budget = f"{_steps(info.total_steps)} env steps on each of {info.seeds_per_trial} seed(s)"
        lines.append(f"- **Budget per trial:** {budget} (tuning seeds {info.tuning_seeds})")
    if n_trials is not None:
        lines.append(f"- **Trials:** {n_trials}")
    lines.append(f"- **Objective:** {info.objective_description()}")
    if confirmed:
        lines += ["", *confirmation_lines(confirmed)]
    lines += ["", CURVES_SENTENCE]
    return "\n".join(lines) + "\n"


def confirmation_lines(confirmed: Sequence[CandidateStats]) -> list[str]:
    winner = confirmed[0]
    seeds = winner.seeds
    out = [
        f"### Confirmed winner: {winner.label}",
        "",
        f"IQM of the final return on {winner.n} fresh test seed(s) ({seeds[0]}-{seeds[-1]}): "
        f"**{winner.iqm:.1f}** (95% CI {winner.iqm_ci[0]:.1f} to {winner.iqm_ci[1]:.1f}); "
        f"mean {winner.mean:.1f} (95% CI {winner.mean_ci[0]:.1f} to {winner.mean_ci[1]:.1f}).",
        "",
        "| rank | candidate | IQM [95% CI] | search score | P(better than default) |",
        "|---:|---|---|---:|---|",
    ]
    for i, c in enumerate(confirmed, 1):
        score = "" if c.search_score is None else f"{c.search_score:.1f}"
        poi = "baseline" if c.is_baseline else f"{c.poi:.2f} [{c.poi_ci[0]:.2f}, {c.poi_ci[1]:.2f}] ({c.vs_baseline})"
        out.append(f"| {i} | {c.label} | {c.iqm:.1f} [{c.iqm_ci[0]:.1f}, {c.iqm_ci[1]:.1f}] | {score} | {poi} |")
    return out


def has_note(study: optuna.Study) -> bool:
    from optuna_dashboard import get_note

    try:
        return bool(get_note(study))
    except (KeyError, ValueError):
        return False


def save_study_note(
    study: optuna.Study, confirmed: Sequence[CandidateStats] = (), only_if_missing: bool = False
) -> None:
    """Write (or rewrite) the study's note."""
    from optuna_dashboard import save_note

    if only_if_missing and has_note(study):
        return
    save_note(study, study_note(records.read_study_info(study), confirmed=confirmed))
