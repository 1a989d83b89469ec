"""``python -m analysis.report``: one self-contained HTML report of a stored study.

The file opens offline (plotly.js is inlined, nothing is fetched) and shows the
optimisation history, every trial's learning curve coloured by state, parameter
importances (Optuna's default evaluator), parallel coordinates, slice plots, a contour
of the two most important parameters, wall time and env steps per second per trial,
and the best trial's complete configuration. The trials table is written beside it as
``<name>-trials.csv`` (and ``<name>-trials.parquet`` when pyarrow is installed).

A plot that cannot be drawn (no complete trial yet, too few trials for importances)
is replaced by a sentence saying why; the report itself is always written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import importlib.util
import logging
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

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import yaml
from optuna.trial import FrozenTrial, TrialState
from plotly.offline import get_plotlyjs

from vmpo_tune.cli_common import add_common_flags, configure_logging, run_cli
from vmpo_tune.errors import UserError
from vmpo_tune.export import open_existing_study
from vmpo_tune.search.storage import ENV_STORAGE, redact_url
from vmpo_tune.search.study import SPEC_ATTR, counts, retried_numbers

from . import figures
from .dashboard import dashboard_command
from .tables import redact_text, trials_table, write_tables

log = logging.getLogger(__name__)

NO_TRIALS = "This study has no trials yet, so there is nothing to plot."
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
.note { background: #fff7e0; border-left: 4px solid #f0ad4e; padding: .6rem 1rem; }
.summary td, .summary th { text-align: left; padding: .15rem 1rem .15rem 0; vertical-align: top; }
table.trials { border-collapse: collapse; font-size: .85rem; }
table.trials td, table.trials th { border: 1px solid #ddd; padding: .2rem .5rem; text-align: right; }
pre { background: #f6f8fa; padding: 1rem; overflow-x: auto; font-size: .85rem; }
code { background: #f6f8fa; padding: .1rem .3rem; }
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--study", required=True, help="study name (as given to the search)")
    p.add_argument("--storage", help=f"Optuna RDB URL (default: ${ENV_STORAGE} or sqlite:///runs/<study>/study.db)")
    p.add_argument("--run-dir", help="the search's --out folder, for the default storage and the artifacts "
                                     "(default runs/<study>)")  # fmt: skip
    p.add_argument("--out", help="output HTML file (default <run-dir>/report.html if that folder exists, "
                                 "else <study>-report.html)")  # fmt: skip
    add_common_flags(p)
    return p


def default_out(study_name: str, run_dir: str | None) -> Path:
    folder = Path(run_dir) if run_dir else Path("runs") / study_name
    return folder / "report.html" if folder.is_dir() else Path(f"{study_name}-report.html")


# ---------------------------------------------------------------------------- html pieces


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


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
    counts: dict[str, int]
    best: FrozenTrial | None
    files: list[Path] = field(default_factory=list)

    @classmethod
    def load(cls, study: optuna.Study, url: str, run_dir: Path) -> Context:
        trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        return cls(study, url, run_dir, trials, retried_numbers(trials), counts(trials), best_trial(trials))

    @property
    def spec(self) -> dict:
        attrs = self.study.user_attrs.get(SPEC_ATTR)
        return attrs if isinstance(attrs, dict) else {}

    def state_summary(self) -> str:
        c = self.counts
        text = f"{len(self.trials)} trial(s): {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed"
        extra = [f"{c[k]} {k}" for k in ("retried", "running", "waiting") if c[k]]
        return text + (f" ({', '.join(extra)})" if extra else "")

    def no_complete_sentence(self) -> str:
        """The sentence that stands in for everything that needs a complete trial (None when there is one)."""
        if not self.trials:
            return NO_TRIALS
        return (f"This study has no complete trials yet ({self.state_summary()}): there is no best trial, and the "
                "plots that need complete trials are left out.")  # fmt: skip


def plot_section(title: str, build: Callable[[], go.Figure], intro: str = "") -> str:
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
        parts.append(figure_html(fig))
    return "\n".join(parts)


def summary_section(ctx: Context) -> str:
    spec, best, artifacts = ctx.spec, ctx.best, ctx.run_dir / "artifacts"
    objective = ""
    if spec:
        objective = (f"maximise the {spec.get('objective', 'final')} evaluation return, {spec.get('aggregate', 'mean')}"
                     f" over {spec.get('seeds_per_trial', 1)} seed(s)")  # fmt: skip
    budget = f"{spec['total_steps']:,} env steps per trial and seed" if isinstance(spec.get("total_steps"), int) else ""
    rows = [
        ("description", esc(spec.get("description", ""))),
        ("environment", esc(spec.get("env_id", ""))),
        ("objective", esc(objective)),
        ("budget", esc(budget)),
        ("trials", esc(ctx.state_summary())),
        ("best", esc(f"trial {best.number}: {best.value:.4g}") if best else ""),
        ("storage", f"<code>{esc(redact_url(ctx.url))}</code>"),
        ("live view", f"<code>{esc(dashboard_command(ctx.url, artifacts if artifacts.is_dir() else None))}</code>"),
        ("generated", esc(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))),
    ]
    parts = [f"<h1>Study {esc(ctx.study.study_name)}</h1>", kv_table(rows)]
    if best is None:
        parts.append(note(ctx.no_complete_sentence()))
    return "\n".join(parts)


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
    intro = "Optuna's default importance evaluator (optuna.importance.get_param_importances)."
    first = plot_section("Parameter importances", lambda: figures.importance_bars(importances), intro)
    first += "".join(note(w) for w in warned)
    second = plot_section("Contour", lambda: figures.contour(ctx.study, list(importances)))
    return first, second


def complete_sections(ctx: Context) -> list[str]:
    """Everything that needs at least one complete trial, in report order."""
    study = ctx.study
    importances, contour = importance_sections(ctx)
    return [
        plot_section("Optimisation history", lambda: figures.optimization_history(study)),
        importances,
        plot_section("Parallel coordinates", lambda: figures.parallel_coordinates(study)),
        plot_section("Slice plots", lambda: figures.slices(study)),
        contour,
    ]


def best_section(ctx: Context) -> str:
    best = ctx.best
    assert best is not None
    attrs = best.user_attrs
    parts = [f"<h2>Best trial: {best.number}</h2>"]
    rows = [
        ("value", esc(f"{best.value:.6g}")),
        ("seeds", esc(attrs.get("seeds", ""))),
        ("seed returns", esc(attrs.get("seed_returns", ""))),
        ("wall time", esc(f"{attrs['wall_time_s']} s") if "wall_time_s" in attrs else ""),
        ("env steps / s", esc(attrs.get("env_steps_per_s", ""))),
        ("export", f"<code>{esc(export_command(ctx))}</code>"),
    ]
    parts += [kv_table(rows), "<h3>Parameters</h3>", pre(dict(best.params))]
    config = attrs.get("config")
    parts += [
        "<h3>Complete configuration</h3>",
        pre(config) if config else note(f"Trial {best.number} has no stored config (made by another tool?)."),
    ]
    parts += ["<h3>Artifacts</h3>", artifacts_html(ctx, best)]
    if attrs.get("provenance"):
        parts += ["<h3>Provenance</h3>", pre(redacted(attrs["provenance"]))]
    return "\n".join(parts)


def export_command(ctx: Context) -> str:
    return f"python -m vmpo_tune.export --study {ctx.study.study_name} --storage '{redact_url(ctx.url)}'"


def redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


def artifacts_html(ctx: Context, trial: FrozenTrial) -> str:
    try:
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=ctx.study._storage)
    except Exception as exc:
        log.warning("cannot list the artifacts of trial %d: %s", trial.number, exc)
        return note(f"Cannot list the artifacts: {exc}")
    if not metas:
        return note("This trial has no artifacts.")
    folder = ctx.run_dir / "artifacts"
    items = []
    for meta in metas:
        path = folder / meta.artifact_id
        where = f"<code>{esc(path)}</code>" if path.exists() else f"id <code>{esc(meta.artifact_id)}</code>"
        items.append(f"<li>{esc(meta.filename)} ({esc(meta.mimetype)}): {where}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def trials_section(frame: pd.DataFrame, files: list[Path]) -> str:
    columns = ["number", "state", "value", "last_step", "user_attrs.wall_time_s", "user_attrs.env_steps_per_s"]
    columns += [c for c in frame.columns if c.startswith("params.")]
    columns += [c for c in ("user_attrs.fail_reason",) if c in frame.columns]
    shown = frame.reindex(columns=[c for c in columns if c in frame.columns])
    shown = shown.rename(columns=lambda c: c.removeprefix("user_attrs.").removeprefix("params."))
    listing = ", ".join(f"<code>{esc(p.name)}</code>" for p in files)
    parts = ["<h2>Trials</h2>", f"<p>Every column of every trial is in {listing}, beside this file.</p>"]
    if not frame.empty:
        parts.append(shown.to_html(index=False, na_rep="", classes="trials", border=0, float_format=fmt_value))
    return "\n".join(parts)


def render(ctx: Context, frame: pd.DataFrame) -> str:
    """The complete HTML document."""
    sections = [summary_section(ctx)]
    missing = ctx.no_complete_sentence()
    if ctx.best is not None:
        sections += complete_sections(ctx)
    else:
        titles = ("Optimisation history", "Parameter importances", "Parallel coordinates", "Slice plots", "Contour")
        sections += [f"<h2>{t}</h2>\n{note(missing)}" for t in titles]
    sections.append(plot_section("Learning curves", lambda: figures.learning_curves(ctx.trials, ctx.retried),
                                 "Evaluation return at each evaluation mark; x is env steps."))  # fmt: skip
    sections.append(plot_section("Wall time and throughput", lambda: figures.throughput(ctx.trials, ctx.retried)))
    sections.append(best_section(ctx) if ctx.best is not None else f"<h2>Best trial</h2>\n{note(missing)}")
    sections.append(trials_section(frame, ctx.files))
    title = f"vmpo-tune study {esc(ctx.study.study_name)}"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f'<style>{CSS}</style>\n<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body>\n'
            + "\n".join(sections) + "\n</body>\n</html>\n")  # fmt: skip


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
    study, url = open_existing_study(args.study, args.storage, args.run_dir)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / args.study
    out = Path(args.out) if args.out else default_out(args.study, args.run_dir)
    try:
        written = build_report(study, url, run_dir, out)
    except OSError as exc:
        raise UserError(f"cannot write {exc.filename or out}: {exc.strerror}; pick another --out") from None
    c = counts(study.get_trials(deepcopy=False))
    print(f"wrote {written[0]} ({c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed) and "
          + ", ".join(str(p) for p in written[1:]))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_cli(lambda: report(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
