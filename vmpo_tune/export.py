"""python -m vmpo_tune.export: the winning configuration(s) of a study as a YAML run file.

When the study has a confirmation (python -m vmpo_tune.confirm, or search --confirm-top),
the runs are its candidates ranked by their IQM on fresh test seeds, and the *confirmed*
best comes first; without one (or with --by search) they are the trials ranked by their
search score. The file holds each run's complete agent and train configuration, its
scores, the tuning and test seeds, the confirmation statistics, the budget spent (trials,
env steps, CPU hours), the search space, and provenance: a reader can judge the claim
from the file alone. python -m vmpo_tune.train --config FILE reads it back into exactly
the same configs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from . import optuna_private, provenance, records, stored_study
from .cli_common import Parser, add_common_flags, configure_logging, positive_int, run_cli
from .cli_flags import add_stored_study_flags
from .errors import UserError
from .redaction import redact_url
from .runfile import FORMAT, confirmed_entry, dump, run_entry
from .search import racing
from .stats import CandidateStats

log = logging.getLogger("vmpo_tune.export")

BY = ("confirmed", "search")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m vmpo_tune.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_stored_study_flags(p, artifacts=True)
    p.add_argument("--top", type=positive_int, default=1, help="export the K best runs (default 1)")
    p.add_argument(
        "--by",
        choices=BY,
        help="rank by the confirmation on fresh seeds or by the search score (default: confirmed when the study "
        "has a confirmation, else search)",
    )
    p.add_argument("--out", help="output YAML file (default <study>-best.yaml); an existing one is kept")
    p.add_argument("--force", action="store_true", help="replace the output file if it already exists")
    add_common_flags(p)
    return p


def ranked_trials(study: optuna.Study, top: int) -> list[FrozenTrial]:
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not complete:
        raise UserError(f"study {study.study_name!r} has no complete trial yet; run (or resume) its search first")
    info = records.read_study_info(study)
    if info.search == "racing":  # configurations by the race (most seeds, then mean), each once
        by_number = {t.number: t for t in complete}
        table = racing.standings(study.get_trials(deepcopy=False), info.seed)
        picked = [next((by_number[n] for n in c.complete if n in by_number), None) for c in table]
        return [t for t in picked if t is not None][:top]
    return sorted(complete, key=lambda t: (-t.value, t.number))[:top]


def checkpoint_entry(study: optuna.Study, trial: FrozenTrial | None, artifact_dir: Path | None) -> dict | None:
    """Where the best checkpoint of a trial's first seed lies (for ``play``), if that file exists here."""
    seeds = [] if trial is None else records.read_seeds(trial)
    if not seeds or artifact_dir is None:
        return None
    artifact_id = records.checkpoint_artifacts(trial, optuna_private.storage_of(study)).get(seeds[0])
    path = None if artifact_id is None else artifact_dir / artifact_id
    return {"seed": seeds[0], "path": str(path.resolve())} if path is not None and path.is_file() else None


def _confirmed_runs(
    study: optuna.Study,
    by_number: dict[int, FrozenTrial],
    confirmation: list[CandidateStats],
    top: int,
    plan: records.ConfirmPlan,
) -> list[dict[str, Any]]:
    info = records.read_study_info(study)
    held_out = {c.source_trial: c for c in records.read_held_out(study) if not c.is_baseline}
    runs = []
    for i, stats in enumerate(confirmation[:top], 1):
        trial = by_number.get(stats.source_trial) if stats.source_trial is not None else None
        entry = run_entry(i, trial, None if trial is not None else info.default_config, info.tuning_seeds)
        if plan.total_steps:  # the budget the confirmed statistics were measured at
            entry["total_steps"] = plan.total_steps
        entry["candidate"] = stats.label
        entry["confirmed"] = confirmed_entry(stats)
        checked = held_out.get(stats.source_trial) if stats.source_trial is not None else None
        if checked is not None:  # the same configuration again, on seeds nothing chose
            entry["held_out"] = confirmed_entry(checked)
        runs.append(entry)
    return runs


def budget(study: optuna.Study, companion: optuna.Study | None, checked: optuna.Study | None = None) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    out = {
        "search_trials": len(trials),
        "search_complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "search_env_steps": records.env_steps(trials),
        "search_cpu_hours": float(f"{records.cpu_hours(trials):.3g}"),
    }
    if companion is not None:
        units = companion.get_trials(deepcopy=False)
        out.update(
            confirmation_units=len(units),
            confirmation_env_steps=records.env_steps(units),
            confirmation_cpu_hours=float(f"{records.cpu_hours(units):.3g}"),
        )
    if checked is not None:  # the held-out check's units (confirm --held-out)
        units = checked.get_trials(deepcopy=False)
        out.update(
            held_out_units=len(units),
            held_out_env_steps=records.env_steps(units),
            held_out_cpu_hours=float(f"{records.cpu_hours(units):.3g}"),
        )
    return out


def build_document(
    study: optuna.Study,
    url: str,
    top: int,
    by: str | None,
    companion=None,
    artifact_dir: Path | None = None,
    checked: optuna.Study | None = None,
) -> dict[str, Any]:
    """The export document; ``companion`` is the study's confirmation study, ``checked`` its held-out check's."""
    info = records.read_study_info(study)
    confirmation = records.read_confirmation(study)
    by = by or ("confirmed" if confirmation else "search")
    if by == "confirmed" and not confirmation:
        raise UserError(
            f"study {study.study_name!r} has no confirmation yet; run python -m vmpo_tune.confirm --study "
            f"{study.study_name}, or export with --by search"
        )
    plan = records.read_confirm_plan(companion) if companion is not None else records.ConfirmPlan()
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    if by == "confirmed":
        runs = _confirmed_runs(study, by_number, confirmation, top, plan)
    else:
        runs = [run_entry(i + 1, t) for i, t in enumerate(ranked_trials(study, top))]
    for run in runs:
        checkpoint = checkpoint_entry(study, by_number.get(run["trial"]), artifact_dir)
        if checkpoint is not None:
            run["checkpoint"] = checkpoint
    return {
        "format": FORMAT,
        "study": study.study_name,
        "description": info.description,
        "objective": info.objective_description(),
        "ranked_by": "IQM of the final return on fresh test seeds" if by == "confirmed" else "search score",
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "storage": redact_url(url),
        "tuning_seeds": info.tuning_seeds,
        "test_seeds": list(plan.test_seeds),
        "budget": budget(study, companion, checked),
        "search_space": info.search_space,
        "confirmation": [c.as_dict() for c in confirmation],
        **_held_out_section(study),
        "provenance": {"versions": provenance.versions(), "git_commit": provenance.git_commit()},
        "runs": runs,
    }


def _held_out_section(study: optuna.Study) -> dict[str, Any]:
    """``held_out``: the held-out check's seeds and statistics (``confirm --held-out``), when it ran."""
    checked = records.read_held_out(study)
    if not checked:
        return {}
    seeds = sorted({s for c in checked for s in c.seeds})
    return {"held_out": {"test_seeds": seeds, "results": [c.as_dict() for c in checked]}}


def _exists_message(out: Path) -> str:
    return f"{out} already exists; pass --force to replace it, or pick another --out"


def check_out(out: Path, force: bool) -> None:
    """Refuse, before the study is even opened, an output file that must not or cannot be written."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name, such as {out / 'best.yaml'}")
    if (out.exists() or out.is_symlink()) and not force:
        raise UserError(_exists_message(out))
    folder = out.parent
    while not folder.exists() and folder != folder.parent:  # the folder that will hold the new ones
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {out}: {folder} is a file, not a folder; pick another --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {out}: folder {folder} is not writable; pick another --out")


def write_out(out: Path, text: str, force: bool) -> None:
    """Write ``out`` as a new file, or with ``force`` replace the old one in one step; a failed write leaves
    no partial file and the old one as it was."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {out}: cannot create {out.parent}: {exc.strerror}; pick another --out") from None
    try:
        if force:
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(text)
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            f = out.open("x")  # never replaces a file that appeared since check_out
            try:
                with f:
                    f.write(text)
            except BaseException:
                out.unlink(missing_ok=True)
                raise
    except FileExistsError:
        raise UserError(_exists_message(out)) from None
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}; pick another --out") from None


def export(args: argparse.Namespace) -> int:
    out = Path(args.out or f"{args.study}-best.yaml")
    check_out(out, args.force)
    study, url, storage = stored_study.open_existing_study(args.study, args.storage, args.run_dir)
    artifact_dir = (
        Path(args.artifact_dir) if args.artifact_dir else records.artifact_dir(study.study_name, args.run_dir)
    )
    companion = stored_study.load_companion(storage, study.study_name)
    checked = stored_study.load_companion(storage, study.study_name, held_out=True)
    doc = build_document(study, url, args.top, args.by, companion, artifact_dir, checked)
    header = f"# vmpo-tune run configuration; train it with: python -m vmpo_tune.train --config {out}\n"
    write_out(out, header + dump(doc), args.force)
    best = doc["runs"][0]
    if "confirmed" in best:
        c = best["confirmed"]
        what = (
            f"confirmed best {best['candidate']}: IQM {c['iqm']:.1f} (95% CI {c['iqm_ci'][0]:.1f} to "
            f"{c['iqm_ci'][1]:.1f}) on {c['n']} test seeds"
        )
        if "held_out" in best:
            h = best["held_out"]
            what += f"; IQM {h['iqm']:.1f} ({h['iqm_ci'][0]:.1f} to {h['iqm_ci'][1]:.1f}) on {h['n']} held-out seeds"
    else:
        what = f"best trial {best['trial']} scored {best['score']:.1f} on its tuning seed(s) (not confirmed)"
    print(f"wrote {out}: {len(doc['runs'])} run(s); {what}")
    if best.get("resume_exact") is False:
        print(
            f"note: trial {best['trial']} was resumed without its environments' state; train will not reproduce "
            "its score exactly"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_cli(lambda: export(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
