"""python -m analysis.report: one self-contained HTML report of a stored study.

The file opens offline (plotly.js is inlined, nothing is fetched), fits a 1,400 px page,
and shows: the confirmation on fresh seeds when the study has one (IQM with confidence
intervals per candidate, every seed's return, the probability of improving on the
default, search score against confirmed IQM); the optimisation history; every trial's
learning curve coloured by state; parameter importances (Optuna's default evaluator)
and a contour of the two most important parameters, withheld below a minimum number of
complete trials; parallel coordinates; slice plots; wall time and env steps per second
per trial; and the winner's complete configuration. Each figure says how many trials
it rests on. The trials table is written beside it as <name>-trials.csv (and
<name>-trials.parquet when pyarrow is installed).

A plot that cannot be drawn (no complete trial yet, too few trials for importances)
is replaced by a sentence saying why; the report itself is always written.

Why this module is long (about 530 lines): it is the report's HTML, section by section; the figures
are :mod:`analysis.figures` and the tables :mod:`analysis.tables`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import importlib.util
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna


def _require_extras() -> None:
    """The report needs the [analysis] extra; say so in one line instead of a traceback."""
    missing = [name for name in ("pandas", "plotly") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"error: the report needs {', '.join(missing)}: pip install -e '.[analysis]'", file=sys.stderr)
        raise SystemExit(2)


_require_extras()

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import yaml
from optuna.trial import FrozenTrial, TrialState
from plotly.offline import get_plotlyjs

from vmpo_tune import optuna_private, records, stored_study
from vmpo_tune.cli_common import Parser, add_common_flags, configure_logging, run_cli
from vmpo_tune.cli_flags import add_stored_study_flags
from vmpo_tune.errors import UserError
from vmpo_tune.redaction import redact_url, redact_value
from vmpo_tune.stats import CandidateStats

from . import figures
from .dashboard import dashboard_command
from .tables import trials_table, write_tables

log = logging.getLogger(__name__)

IMPORTANCE_TITLES = ("Parameter importances", "Contour")
NO_TRIALS = "This study has no trials yet, so there is nothing to plot."
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1400px;
       padding: 0 1rem; color: #222; box-sizing: border-box; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
.note { background: #fff7e0; border-left: 4px solid #f0ad4e; padding: .6rem 1rem; }
.basis { color: #555; font-size: .9rem; }
.summary td, .summary th { text-align: left; padding: .15rem 1rem .15rem 0; vertical-align: top; }
.scroll { overflow-x: auto; max-width: 100%; max-height: 40rem; overflow-y: auto; border: 1px solid #eee; }
table.trials { border-collapse: collapse; font-size: .85rem; }
table.trials td, table.trials th { border: 1px solid #ddd; padding: .2rem .5rem; text-align: right;
                                   white-space: nowrap; }
table.all-trials { width: 100%; }
table.all-trials th { position: sticky; top: 0; background: #f6f8fa; }
table.all-trials td.text { text-align: left; white-space: normal; overflow-wrap: anywhere; }
table.all-trials td.params { font-size: .8rem; }
pre { background: #f6f8fa; padding: 1rem; overflow-x: auto; font-size: .85rem; }
code { background: #f6f8fa; padding: .1rem .3rem; overflow-wrap: anywhere; }
.plotly-graph-div { max-width: 100%; }
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m analysis.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_stored_study_flags(p)
    p.add_argument(
        "--out", help="output HTML file (default <run-dir>/report.html if that folder exists, else <study>-report.html)"
    )
    add_common_flags(p)
    return p


def default_out(study_name: str, run_dir: str | None) -> Path:
    folder = Path(run_dir) if run_dir else records.default_run_dir(study_name)
    return folder / "report.html" if folder.is_dir() else Path(f"{study_name}-report.html")


# ---------------------------------------------------------------------------- html pieces


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def basis(text: str) -> str:
    return f'<p class="basis">{esc(text)}</p>'


def figure_html(fig: go.Figure) -> str:
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, config=PLOT_CONFIG)


def pre(data: Any) -> str:
    return f"<pre>{esc(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())}</pre>"


def kv_table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows if v not in (None, ""))
    return f'<table class="summary">{body}</table>'


def fmt_value(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def best_trial(trials: list[FrozenTrial]) -> FrozenTrial | None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


# ---------------------------------------------------------------------------- the report


@dataclass
class Context:
    study: optuna.Study
    url: str
    run_dir: Path
    trials: list[FrozenTrial]
    retried: set[int]
    counts: records.TrialCounts
    best: FrozenTrial | None
    info: records.StudyInfo
    confirmation: list[CandidateStats]
    held_out: list[CandidateStats] = field(default_factory=list)
    """The held-out check of the confirmed winner and the default (``confirm --held-out``), when it ran."""
    files: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, study: optuna.Study, url: str, run_dir: Path) -> Context:
        trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        return cls(
            study,
            url,
            run_dir,
            trials,
            records.retried_numbers(trials),
            records.budget_counts(trials),
            best_trial(trials),
            records.read_study_info(study),
            records.read_confirmation(study),
            records.read_held_out(study),
        )

    @property
    def n_complete(self) -> int:
        return self.counts.complete

    def state_summary(self) -> str:
        c = self.counts
        text = f"{len(self.trials)} trial(s): {c.complete} complete, {c.pruned} pruned, {c.fail} failed"
        extra = [f"{getattr(c, k)} {k}" for k in ("retried", "running", "waiting") if getattr(c, k)]
        return text + (f" ({', '.join(extra)})" if extra else "")

    def no_complete_sentence(self) -> str:
        """The sentence that stands in for everything that needs a complete trial."""
        if not self.trials:
            return NO_TRIALS
        return (
            f"This study has no complete trials yet ({self.state_summary()}): there is no best trial, and the "
            "plots that need complete trials are left out."
        )

    def conditional_params(self) -> dict[str, str]:
        """Searched parameters sampled only under a condition, with the condition in words."""
        out = {}
        for p in self.info.search_space:
            if p.get("when"):
                out[p.get("optuna_name", p["name"])] = ", ".join(f"{k} = {v}" for k, v in p["when"])
        return out


def plot_section(title: str, build: Callable[[], go.Figure], intro: str = "", rests_on: str = "") -> str:
    """A titled figure; a plot that cannot be drawn becomes a note saying why."""
    parts = [f"<h2>{esc(title)}</h2>"]
    if intro:
        parts.append(f"<p>{esc(intro)}</p>")
    try:
        fig = build()
    except figures.Unavailable as exc:
        parts.append(note(str(exc)))
    except Exception as exc:
        log.warning("%s: could not draw it (%s: %s)", title, type(exc).__name__, exc)
        parts.append(note(f"Could not draw this plot: {type(exc).__name__}: {exc}"))
    else:
        if rests_on:
            parts.append(basis(rests_on))
        parts.append(figure_html(fig))
    return "\n".join(parts)


def summary_section(ctx: Context) -> str:
    info, best, artifacts = ctx.info, ctx.best, records.artifact_dir(ctx.study.study_name, ctx.run_dir)
    budget = f"{info.total_steps:,} env steps per trial and seed" if isinstance(info.total_steps, int) else ""
    winner = ""
    if ctx.confirmation:
        w = ctx.confirmation[0]
        winner = f"{w.label}: IQM {w.iqm:.1f} (95% CI {w.iqm_ci[0]:.1f} to {w.iqm_ci[1]:.1f}) on {w.n} fresh test seeds"
    rows = [
        ("description", esc(info.description)),
        ("environment", esc(info.env_id)),
        ("objective", esc(info.objective_description()) if info.name else ""),
        ("budget", esc(budget)),
        ("trials", esc(ctx.state_summary())),
        ("confirmed winner", f"<strong>{esc(winner)}</strong>" if winner else ""),
        ("best search score", esc(f"trial {best.number}: {best.value:.4g} on the tuning seeds") if best else ""),
        ("CPU time", esc(f"{records.cpu_hours(ctx.trials):.2f} core-hours of training") if ctx.trials else ""),
        ("storage", f"<code>{esc(redact_url(ctx.url))}</code>"),
        ("live view", f"<code>{esc(dashboard_command(ctx.url, artifacts if artifacts.is_dir() else None))}</code>"),
        ("generated", esc(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))),
    ]
    parts = [f"<h1>Study {esc(ctx.study.study_name)}</h1>", kv_table(rows)]
    if best is None:
        parts.append(note(ctx.no_complete_sentence()))
    elif not ctx.confirmation:
        parts.append(
            note(
                "No confirmation yet: the best trial is ranked by its return on the tuning seed(s) only, which is an "
                f"optimistic estimate. Confirm it: python -m vmpo_tune.confirm --study {ctx.study.study_name}"
            )
        )
    return "\n".join(parts)


def confirmation_sections(ctx: Context) -> list[str]:
    ranked = ctx.confirmation
    if not ranked:
        return []
    n, k = ranked[0].n, len(ranked)
    seeds = ranked[0].seeds
    rests_on = f"{k} candidate(s) x {n} test seed(s) ({seeds[0]}-{seeds[-1]}), seeds no trial used."
    rows = []
    for i, c in enumerate(ranked, 1):
        poi = "baseline" if c.is_baseline else f"{c.poi:.2f} [{c.poi_ci[0]:.2f}, {c.poi_ci[1]:.2f}]"
        score = "" if c.search_score is None else f"{c.search_score:.1f}"
        rows.append(
            f"<tr><td>{i}</td><td>{esc(c.label)}</td><td>{c.iqm:.1f} [{c.iqm_ci[0]:.1f}, "
            f"{c.iqm_ci[1]:.1f}]</td><td>{c.mean:.1f} [{c.mean_ci[0]:.1f}, {c.mean_ci[1]:.1f}]</td>"
            f"<td>{c.median:.1f}</td><td>{c.min:.1f} to {c.max:.1f}</td><td>{esc(poi)}</td>"
            f"<td>{esc(c.vs_baseline)}</td><td>{score}</td></tr>"
        )
    table = (
        '<div class="scroll"><table class="trials"><tr><th>rank</th><th>candidate</th><th>IQM [95% CI]</th>'
        "<th>mean [95% CI]</th><th>median</th><th>min to max</th><th>P(> default) [95% CI]</th><th>vs default</th>"
        f"<th>search score</th></tr>{''.join(rows)}</table></div>"
    )
    intro = (
        "The best distinct trials and the study's default configuration, trained again on fresh test seeds; "
        "ranked by the interquartile mean of the final return, with 95% percentile-bootstrap intervals."
    )
    return [
        f"<h2>Confirmation on fresh seeds</h2>\n<p>{esc(intro)}</p>\n{basis(rests_on)}\n{table}",
        plot_section("Confirmed IQM per candidate", lambda: figures.confirmed_intervals(ranked), rests_on=rests_on),
        plot_section("Return on each test seed", lambda: figures.confirmed_seed_returns(ranked), rests_on=rests_on),
        plot_section(
            "Probability of improvement over the default",
            lambda: figures.probability_of_improvement(ranked),
            rests_on=rests_on,
        ),
        plot_section("Search score vs confirmed IQM", lambda: figures.search_vs_confirmed(ranked), rests_on=rests_on),
    ]


def importance_sections(ctx: Context) -> tuple[str, str]:
    """Importances, then the contour of the two most important parameters (it needs their ranking)."""
    try:
        importances, warned = figures.param_importances(ctx.study)
    except figures.Unavailable as exc:
        return "<h2>Parameter importances</h2>\n" + note(str(exc)), "<h2>Contour</h2>\n" + note(str(exc))
    except Exception as exc:
        log.warning("parameter importances: %s: %s", type(exc).__name__, exc)
        text = f"Could not compute parameter importances: {type(exc).__name__}: {exc}"
        return "<h2>Parameter importances</h2>\n" + note(text), "<h2>Contour</h2>\n" + note(text)
    conditional = ctx.conditional_params()
    intro = "Optuna's default importance evaluator (optuna.importance.get_param_importances)."
    if any(name in conditional for name in importances):
        intro += (
            " A conditional parameter is ranked only over the trials that sampled it, so its importance is not "
            "comparable with the others'."
        )
    rests_on = f"Rests on {ctx.n_complete} complete trials."
    first = plot_section(
        "Parameter importances", lambda: figures.importance_bars(importances, conditional), intro, rests_on
    )
    first += "".join(note(w) for w in warned)
    second = plot_section("Contour", lambda: figures.contour(ctx.study, list(importances)), rests_on=rests_on)
    return first, second


def complete_sections(ctx: Context) -> list[str]:
    """Everything that needs at least one complete trial, in report order."""
    study = ctx.study
    on_complete = f"Rests on {ctx.n_complete} complete trial(s)."
    importances, contour = importance_sections(ctx)
    return [
        plot_section("Optimisation history", lambda: figures.optimization_history(study), rests_on=on_complete),
        importances,
        plot_section("Parallel coordinates", lambda: figures.parallel_coordinates(study), rests_on=on_complete),
        plot_section("Slice plots", lambda: figures.slices(study), rests_on=on_complete),
        contour,
    ]


def winner_section(ctx: Context) -> str:
    """The confirmed winner's (or, without a confirmation, the best trial's) complete configuration."""
    by_number = {t.number: t for t in ctx.trials}
    title, trial = "Best trial (search score)", ctx.best
    extra: list[tuple[str, Any]] = []
    if ctx.confirmation:
        w = ctx.confirmation[0]
        trial = by_number.get(w.source_trial) if w.source_trial is not None else None
        title = f"Confirmed winner: {w.label}"
        extra = [
            ("confirmed IQM", esc(f"{w.iqm:.1f} [{w.iqm_ci[0]:.1f}, {w.iqm_ci[1]:.1f}]")),
            ("test seeds", esc(w.seeds)),
            ("test returns", esc([round(v, 1) for v in w.returns])),
        ]
        extra += held_out_rows(ctx, w)
        if trial is None:
            config = ctx.info.default_config
            return "\n".join(
                [
                    f"<h2>{esc(title)}</h2>",
                    kv_table(extra),
                    "<h3>Complete configuration</h3>",
                    pre(config.to_dict()) if config else note("No stored configuration."),
                ]
            )
    assert trial is not None
    record = records.TrialRecord.of(trial)
    rows = extra + [
        ("search score", esc(f"{record.value:.6g}")),
        ("tuning seeds", esc(record.seeds)),
        ("tuning seed returns", esc(record.seed_returns)),
        ("wall time", esc(f"{record.wall_time_s} s") if record.wall_time_s is not None else ""),
        ("env steps / s", esc(record.env_steps_per_s or "")),
        ("resumed", esc(_resumed(record))),
        ("export", f"<code>{esc(export_command(ctx))}</code>"),
    ]
    parts = [
        f"<h2>{esc(heading(title, record.number))}</h2>",
        kv_table(rows),
        "<h3>Parameters</h3>",
        pre(record.params),
    ]
    parts += [
        "<h3>Complete configuration</h3>",
        pre(record.config.to_dict())
        if record.config
        else note(f"Trial {record.number} has no stored config (made by another tool?)."),
    ]
    parts += ["<h3>Artifacts</h3>", artifacts_html(ctx, trial)]
    if record.provenance:
        parts += ["<h3>Provenance</h3>", pre(redact_value(record.provenance))]
    return "\n".join(parts)


def held_out_rows(ctx: Context, winner: CandidateStats) -> list[tuple[str, Any]]:
    """The winner's and the default's statistics on held-out seeds, when a held-out check ran for this winner."""
    mine = next((c for c in ctx.held_out if c.source_trial == winner.source_trial and not c.is_baseline), None)
    default = next((c for c in ctx.held_out if c.is_baseline), None)
    if mine is None or default is None:
        return []

    def iqm(c: CandidateStats) -> str:
        return f"{c.iqm:.1f} [{c.iqm_ci[0]:.1f}, {c.iqm_ci[1]:.1f}]"

    return [
        ("held-out IQM", esc(f"{iqm(mine)}; the default {iqm(default)}")),
        ("held-out seeds", esc(mine.seeds)),
        ("held-out returns", esc([round(v, 1) for v in mine.returns])),
        ("P(> default), held out", esc(f"{mine.poi:.2f} [{mine.poi_ci[0]:.2f}, {mine.poi_ci[1]:.2f}]")),
    ]


def heading(title: str, number: int) -> str:
    """``title (trial N)``, unless the title already names trial N ("Confirmed winner: trial 11")."""
    names_it = re.search(rf"\btrial {number}\b", title) is not None
    return title if names_it else f"{title} (trial {number})"


def _resumed(record: records.TrialRecord) -> str:
    if not record.resumed_from_env_steps:
        return ""
    how = "exactly" if record.resume_exact else "without its environments' state (not bit-identical)"
    return f"at {record.resumed_from_env_steps:,} env steps, {how}"


def export_command(ctx: Context) -> str:
    return f"python -m vmpo_tune.export --study {ctx.study.study_name} --storage '{redact_url(ctx.url)}'"


def artifacts_html(ctx: Context, trial: FrozenTrial) -> str:
    try:
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=optuna_private.storage_of(ctx.study))
    except Exception as exc:
        log.warning("cannot list the artifacts of trial %d: %s", trial.number, exc)
        return note(f"Cannot list the artifacts: {exc}")
    if not metas:
        return note("This trial has no artifacts.")
    folder = records.artifact_dir(ctx.study.study_name, ctx.run_dir)
    items = []
    for meta in metas:
        path = folder / meta.artifact_id
        where = f"<code>{esc(path)}</code>" if path.exists() else f"id <code>{esc(meta.artifact_id)}</code>"
        items.append(f"<li>{esc(meta.filename)} ({esc(meta.mimetype)}): {where}</li>")
    return "<ul>" + "".join(items) + "</ul>"


TRIAL_COLUMNS = ("number", "state", "value", "last_step", records.WALL_TIME, records.ENV_STEPS_PER_S)


def fmt_cell(value: Any) -> str:
    """A table cell: blank for a missing value, whole numbers with thousands separators, others to 4 digits."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{int(value):,}" if value.is_integer() and abs(value) < 1e15 else fmt_value(float(value))
    return str(value)


def trials_html(frame: pd.DataFrame) -> str:
    """Every trial in one table that fits the page: a few fixed columns, then all of its parameters in one
    wrapping cell (``name=value ...``) and the failure reason, wrapped too; the page scrolls, not the table."""
    fixed = [c for c in TRIAL_COLUMNS if c in frame.columns or f"user_attrs.{c}" in frame.columns]
    params = [c for c in frame.columns if c.startswith("params.")]
    reason = f"user_attrs.{records.FAIL_REASON}"
    head = "".join(f"<th>{esc(c)}</th>" for c in fixed) + "<th>params</th>"
    head += "<th>fail_reason</th>" if reason in frame.columns else ""
    rows = []
    for row in frame.to_dict("records"):
        cells = [f"<td>{esc(fmt_cell(row.get(c, row.get(f'user_attrs.{c}'))))}</td>" for c in fixed]
        shown = [f"{c.removeprefix('params.')}={fmt_cell(row[c])}" for c in params if fmt_cell(row[c]) != ""]
        cells.append(f'<td class="text params">{esc(", ".join(shown))}</td>')
        if reason in frame.columns:
            cells.append(f'<td class="text">{esc(fmt_cell(row[reason]))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="trials all-trials"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def trials_section(frame: pd.DataFrame, files: list[Path]) -> str:
    listing = ", ".join(f"<code>{esc(p.name)}</code>" for p in files)
    parts = ["<h2>Trials</h2>", f"<p>Every column of every trial is in {listing}, beside this file.</p>"]
    if not frame.empty:
        parts.append(trials_html(frame))
    return "\n".join(parts)


def render(ctx: Context, frame: pd.DataFrame) -> str:
    """The complete HTML document."""
    sections = [summary_section(ctx), *confirmation_sections(ctx)]
    missing = ctx.no_complete_sentence()
    if ctx.best is not None:
        sections += complete_sections(ctx)
    else:
        titles = ("Optimisation history", "Parameter importances", "Parallel coordinates", "Slice plots", "Contour")
        withheld = figures.importances_withheld(ctx.n_complete)
        sections += [
            f"<h2>{t}</h2>\n{note(missing)}" + (f"\n{note(withheld)}" if t in IMPORTANCE_TITLES else "") for t in titles
        ]
    with_curve = sum(bool(t.intermediate_values) for t in ctx.trials)
    sections.append(
        plot_section(
            "Learning curves",
            lambda: figures.learning_curves(ctx.trials, ctx.retried),
            "Evaluation return at each evaluation mark; x is env steps.",
            f"Rests on {with_curve} trial(s) with at least one evaluation.",
        )
    )
    sections.append(plot_section("Wall time and throughput", lambda: figures.throughput(ctx.trials, ctx.retried)))
    if ctx.best is not None or ctx.confirmation:
        sections.append(winner_section(ctx))
    else:
        sections.append(f"<h2>Best trial</h2>\n{note(missing)}")
    sections.append(trials_section(frame, ctx.files))
    title = f"vmpo-tune study {esc(ctx.study.study_name)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f'<style>{CSS}</style>\n<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body>\n'
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def build_report(study: optuna.Study, url: str, run_dir: Path, out: Path) -> list[Path]:
    """Write the HTML report and the trials table(s); returns the files written (HTML first)."""
    ctx = Context.load(study, url, run_dir)
    log.info("study %s: %s", study.study_name, ctx.state_summary())
    frame = trials_table(ctx.trials)
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx.files = write_tables(frame, out)
    out.write_text(render(ctx, frame), encoding="utf-8")
    return [out, *ctx.files]


def report(args: argparse.Namespace) -> int:
    study, url, _ = stored_study.open_existing_study(args.study, args.storage, args.run_dir)
    run_dir = Path(args.run_dir) if args.run_dir else records.default_run_dir(args.study)
    out = Path(args.out) if args.out else default_out(args.study, args.run_dir)
    try:
        written = build_report(study, url, run_dir, out)
    except OSError as exc:
        raise UserError(f"cannot write {exc.filename or out}: {exc.strerror}; pick another --out") from None
    c = records.budget_counts(study.get_trials(deepcopy=False))
    print(
        f"wrote {written[0]} ({c.complete} complete, {c.pruned} pruned, {c.fail} failed) and "
        + ", ".join(str(p) for p in written[1:])
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_cli(lambda: report(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
