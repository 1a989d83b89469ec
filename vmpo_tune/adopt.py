"""python -m vmpo_tune.adopt: make a study's confirmed winner the default of its study file.

Writes the exact values the confirmed winner ran with as the ``default:`` of each searched parameter in the
study file (the one ``search --study NAME`` reads, or --study-file), changing nothing else in it: comments,
layout and every other key stay as they were. The next search of that file then starts from the winner (its
first trial), and a new confirmation compares against it. The stored study is only read: its trials, its
recorded default and its confirmation stay as they were, so its own results still compare against the default
it was searched from.

Adopted only when the confirmation settled it: refused, in one line and with the file untouched, while the
study has no confirmation, while units are still open, when the default won, when the winner is not ahead of
the default with the 95% interval of P(improvement) above 1/2 (--allow-unresolved adopts it anyway), and when
the file does not describe the stored study (another env, budget, evaluation, seeds, fixed values or space).
--dry-run prints the changes and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from . import records, stored_study
from .cli_common import Parser, add_common_flags, configure_logging, run_cli
from .cli_flags import add_stored_study_flags
from .errors import UserError
from .search.confirmation import confirmed_winner
from .search.space import params_to_values
from .search.spec import StudySpec, default_params, load_spec, params_to_config, parse_spec
from .search.study import SIMULATOR
from .search.studyedit import set_defaults
from .search.studyfiles import find_study

log = logging.getLogger("vmpo_tune.adopt")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m vmpo_tune.adopt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_stored_study_flags(p)
    p.add_argument(
        "--study-file",
        help="the study file to write the defaults into (default: the file search --study NAME reads)",
    )
    p.add_argument(
        "--allow-unresolved",
        action="store_true",
        help="adopt a winner whose lead over the default the confirmation did not resolve",
    )
    p.add_argument("--dry-run", action="store_true", help="print the changes; write nothing")
    add_common_flags(p)
    return p


def _check_describes(spec: StudySpec, study, path: Path) -> None:
    """Refuse a file whose env, budget, evaluation, seeds, fixed values or space differ from the stored study's."""
    stored = json.loads(records.read_fingerprint(study) or "{}")
    stored.pop(SIMULATOR, None)
    if stored != json.loads(json.dumps(spec.fingerprint())):
        raise UserError(
            f"{path} does not describe study {study.study_name!r} as it was stored (another env, budget, evaluation, "
            "seeds, fixed values or search space); pass the file the search ran with as --study-file"
        )


def _winner_values(spec: StudySpec, study, winner) -> dict:
    """The searched parameters' values of the winner's trial (config values: transforms undone)."""
    if winner.source_trial is None:
        raise UserError(f"the confirmed winner of study {study.study_name!r} names no trial to take its values from")
    return params_to_values(spec.space, study.trials[winner.source_trial].params)


def _adopted_text(spec: StudySpec, path: Path, values: dict, expected) -> str:
    """The file's text with the new defaults, checked: read back, its default configuration is the winner's and
    nothing but the defaults changed."""
    new = set_defaults(path.read_text(encoding="utf-8"), values, str(path))
    check = parse_spec(yaml.safe_load(new), path, check_env=False)
    same = check.fingerprint() == spec.fingerprint() and (check.status, check.description) == (
        spec.status,
        spec.description,
    )
    if not same or params_to_config(check, default_params(check)).identity() != expected.identity():
        raise UserError(f"{path}: the edited file does not read back as the winner's configuration; edit it by hand")
    return new


def adopt(args: argparse.Namespace) -> int:
    study, _, storage = stored_study.open_existing_study(args.study, args.storage, args.run_dir)
    try:
        path = find_study(args.study_file or study.study_name)
    except UserError:
        raise UserError(
            f"no study file {args.study_file or study.study_name + '.yaml'} where search --study looks; pass the file "
            "the search ran with as --study-file path/to/file.yaml"
        ) from None
    spec = load_spec(str(path), check_env=False)
    _check_describes(spec, study, path)
    companion = stored_study.load_companion(storage, study.study_name)
    winner, config = confirmed_winner(study, companion, "adopting makes the study file's default")
    if winner.vs_baseline != "better" and not args.allow_unresolved:
        low, high = winner.poi_ci
        raise UserError(
            f"the confirmed winner of study {study.study_name!r} ({winner.label}) is not resolved ahead of the "
            f"default: P(improvement) 95% CI {low:.2f} to {high:.2f} includes 1/2; confirm on more seeds "
            "(confirm --seeds N), or pass --allow-unresolved"
        )
    values = _winner_values(spec, study, winner)
    before = params_to_values(spec.space, default_params(spec))
    new = _adopted_text(spec, path, values, config)
    changed = {k: v for k, v in values.items() if before.get(k) != v}
    what = f"{winner.label}: IQM {winner.iqm:.1f} on {winner.n} test seeds, P(> default) {winner.poi:.2f}"
    if not changed:
        print(f"{path}'s defaults are already the confirmed winner's ({what}); nothing to change")
        return 0
    for name, value in changed.items():
        print(f"  {name}: {before.get(name, '(none)')!r} -> {value!r}")
    if args.dry_run:
        print(f"would set {len(changed)} default(s) in {path} to the confirmed winner's ({what}); wrote nothing")
        return 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(new, encoding="utf-8")
        os.chmod(tmp, path.stat().st_mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}; pass a writable copy as --study-file") from None
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {path}: {len(changed)} default(s) set to the confirmed winner's ({what})")
    if spec.status:
        print(f"note: {path.name}'s status line still describes the previous default; update it")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_cli(lambda: adopt(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
