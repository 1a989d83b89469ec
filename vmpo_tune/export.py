"""``python -m vmpo_tune.export``: the best trial(s) of a study as a YAML run file.

The file holds each exported trial's *complete* agent and train configuration (as the
trial ran it), its score, seeds and per-seed returns, plus provenance (package versions,
git commit, date, study name, storage with any password removed).
``python -m vmpo_tune.train --config FILE`` reads it back into exactly the same configs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from . import provenance
from .cli_common import add_common_flags, configure_logging, positive_int, run_cli
from .errors import UserError
from .search.storage import ENV_STORAGE, open_storage, parse_url, redact_url, resolve_url
from .search.study import SPEC_ATTR

FORMAT = "vmpo-tune/run-config/1"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vmpo_tune.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--study", required=True, help="study name (as given to the search)")
    p.add_argument("--storage", help=f"Optuna RDB URL (default: ${ENV_STORAGE} or sqlite:///runs/<study>/study.db)")
    p.add_argument("--run-dir", help="the search's --out folder, for the default storage (default runs/<study>)")
    p.add_argument("--top", type=positive_int, default=1, help="export the K best complete trials (default 1)")
    p.add_argument("--out", help="output YAML file (default <study>-best.yaml)")
    add_common_flags(p)
    return p


def open_existing_study(study_name: str, storage_url: str | None, run_dir: str | None) -> tuple[optuna.Study, str]:
    """Load a stored study without creating anything; errors say what exists."""
    url = resolve_url(storage_url, Path(run_dir) if run_dir else Path("runs") / study_name)
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        raise UserError(f"no stored study at {parsed.database}; run a search first, or pass --storage / --run-dir")
    storage = open_storage(url, heartbeat=False)
    names = optuna.get_all_study_names(storage)
    if study_name not in names:
        listing = ", ".join(sorted(names)) or "none"
        raise UserError(f"no study {study_name!r} in {redact_url(url)}; studies there: {listing}")
    return optuna.load_study(study_name=study_name, storage=storage), url


def ranked_trials(study: optuna.Study, top: int) -> list[FrozenTrial]:
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not complete:
        raise UserError(f"study {study.study_name!r} has no complete trial yet; run (or resume) its search first")
    return sorted(complete, key=lambda t: (-t.value, t.number))[:top]


def run_entry(rank: int, trial: FrozenTrial) -> dict[str, Any]:
    config = trial.user_attrs.get("config")
    if not config:
        raise UserError(f"trial {trial.number} has no stored config (made by another tool?); cannot export it")
    return {
        "rank": rank,
        "trial": trial.number,
        "score": float(trial.value),
        "seeds": list(trial.user_attrs.get("seeds", [])),
        "seed_returns": list(trial.user_attrs.get("seed_returns", [])),
        "env_id": config["train"]["env_id"],
        "total_steps": int(config["total_steps"]),
        "params": dict(trial.params),
        "agent": config["agent"],
        "train": config["train"],
        "wall_time_s": trial.user_attrs.get("wall_time_s"),
        "env_steps_per_s": trial.user_attrs.get("env_steps_per_s"),
        "resumed_from_env_steps": trial.user_attrs.get("resumed_from_env_steps"),
        "trial_provenance": trial.user_attrs.get("provenance"),
    }


def build_document(study: optuna.Study, url: str, top: int) -> dict[str, Any]:
    spec = study.user_attrs.get(SPEC_ATTR, {})
    return {
        "format": FORMAT,
        "study": study.study_name,
        "description": spec.get("description", ""),
        "objective": f"{spec.get('objective', 'final')} evaluation return, {spec.get('aggregate', 'mean')} over "
        f"{spec.get('seeds_per_trial', 1)} seed(s)",
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "storage": redact_url(url),
        "provenance": {"versions": provenance.versions(), "git_commit": provenance.git_commit()},
        "runs": [run_entry(i + 1, t) for i, t in enumerate(ranked_trials(study, top))],
    }


def export(args: argparse.Namespace) -> int:
    study, url = open_existing_study(args.study, args.storage, args.run_dir)
    doc = build_document(study, url, args.top)
    out = Path(args.out or f"{args.study}-best.yaml")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        header = f"# vmpo-tune run configuration; train it with: python -m vmpo_tune.train --config {out}\n"
        out.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}; pick another --out") from None
    best = doc["runs"][0]
    print(f"wrote {out}: {len(doc['runs'])} run(s); best trial {best['trial']} scored {best['score']:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_cli(lambda: export(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
