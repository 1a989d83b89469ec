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
import math
import os
import sys
from pathlib import Path

import yaml

from . import next_steps, records, stored_study
from .cli_common import Parser, add_common_flags, configure_logging, run_cli
from .cli_flags import add_stored_study_flags
from .errors import UserError
from .search.confirmation import confirmed_winner
from .search.space import params_to_values
from .search.spec import StudySpec, default_params, default_values, params_to_config, parse_spec
from .search.study import SIMULATOR
from .search.studyedit import set_defaults
from .search.studyfiles import find_study
from .search.widening import widened_ranges
from .search.yamlfile import read_yaml

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


STRICT = ("env_id", "agent", "train", "space")
"""Fingerprint keys that decide what the file's default configuration means: they must match the stored study's."""


def _differences(spec: StudySpec, study, path: Path) -> list[str]:
    """Refuse a file whose env, fixed values or space differ from the stored study's (a space that only widens its
    numeric ranges is a note: the winner's values lie inside it, :mod:`.search.widening`); the other differences
    (budget, evaluation, seeds, objective, strategy: ``search`` overrides them by flag) as notes."""
    stored = json.loads(records.read_fingerprint(study) or "{}")
    mine = json.loads(json.dumps(spec.fingerprint()))
    strict = [k for k in STRICT if stored.get(k) != mine.get(k)]
    widened = widened_ranges({k: stored.get(k) for k in STRICT}, {k: mine.get(k) for k in STRICT})
    if strict and not widened:
        raise UserError(
            f"{path} does not describe study {study.study_name!r} as it was stored (its {strict[0]} differs); pass "
            "the file the search ran with as --study-file"
        )
    keys = sorted((set(stored) | set(mine)) - set(STRICT) - {SIMULATOR})
    notes = [f"{k} {stored.get(k)!r} (the file: {mine.get(k)!r})" for k in keys if stored.get(k) != mine.get(k)]
    return notes + [f"a narrower range than the file's ({w})" for w in widened or ()]


def _study_file(args: argparse.Namespace, study_name: str) -> Path:
    """--study-file, else the file --study named (``--study path/NAME.yaml``), else the file ``search --study NAME``
    reads, else ``./NAME.yaml``."""
    for flag, given in (("--study-file", args.study_file), ("--study", args.study_path)):
        if given:
            try:
                return find_study(str(given))
            except UserError:
                raise UserError(f"{flag} {given}: no such study file; pass the file the search ran with") from None
    try:
        return find_study(study_name)
    except UserError:
        if Path(f"{study_name}.yaml").is_file():
            return Path(f"{study_name}.yaml")
        raise UserError(
            f"no study file {study_name}.yaml here or where search --study looks; pass the file the search ran "
            "with as --study-file path/to/file.yaml"
        ) from None


def _winner_values(spec: StudySpec, study, winner) -> dict:
    """The searched parameters' values of the winner's trial (config values: transforms undone)."""
    if winner.source_trial is None:
        raise UserError(f"the confirmed winner of study {study.study_name!r} names no trial to take its values from")
    return params_to_values(spec.space, study.trials[winner.source_trial].params)


def _check_settled(winner, study_name: str, where: list[str]) -> None:
    """Refuse a winner whose lead over the default the confirmation did not resolve."""
    low, high = winner.poi_ci
    if winner.vs_baseline == "better":
        return
    if math.isnan(low):
        why = "has no interval for P(improvement) (too few test seeds)"
    elif winner.vs_baseline == "worse":
        why = f"is behind the default (P(improvement) 95% CI {low:.2f} to {high:.2f})"
    else:
        why = f"is not resolved ahead of the default (P(improvement) 95% CI {low:.2f} to {high:.2f} includes 1/2)"
    more = " ".join(["python -m vmpo_tune.confirm --study", study_name, *where, "--seeds 20"])
    raise UserError(
        f"the confirmed winner of study {study_name!r} ({winner.label}) {why}; confirm on more seeds ({more}), or "
        "pass --allow-unresolved"
    )


def _adopted_text(text: str, spec: StudySpec, path: Path, values: dict, expected) -> str:
    """The file's text with the new defaults, checked: read back, its default configuration is the winner's and
    nothing but the defaults changed."""
    new = set_defaults(text, values, str(path))
    try:
        check = parse_spec(yaml.safe_load(new), path, check_env=False)
    except yaml.YAMLError:
        check = None
    same = check is not None and (check.fingerprint(), check.status, check.description) == (
        spec.fingerprint(),
        spec.status,
        spec.description,
    )
    if not same or params_to_config(check, default_params(check)).identity() != expected.identity():
        raise UserError(f"{path}: the edited file does not read back as the winner's configuration; edit it by hand")
    return new


def _write(path: Path, text: str) -> None:
    """Replace ``path`` (a symlink's target) in one step: a failed write leaves it as it was."""
    target = path.resolve()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, target.stat().st_mode)
        os.replace(tmp, target)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; pass a writable copy as --study-file") from None
    finally:
        tmp.unlink(missing_ok=True)


def adopt(args: argparse.Namespace) -> int:
    study, url, storage = stored_study.open_existing_study(args.study, args.storage, args.run_dir)
    path = _study_file(args, study.study_name)
    with path.open(encoding="utf-8", newline="") as f:  # newline="": a CRLF file keeps its line endings
        text = f.read()
    spec = parse_spec(read_yaml(path), path, check_env=False)
    notes = _differences(spec, study, path)
    companion = stored_study.load_companion(storage, study.study_name)
    winner, config = confirmed_winner(study, companion, "adopting makes the study file's default")
    if not args.allow_unresolved:
        _check_settled(
            winner, study.study_name, next_steps.locating_flags(study.study_name, args.storage and url, args.run_dir)
        )
    checked = next((c for c in records.read_held_out(study) if c.source_trial == winner.source_trial), None)
    if checked is not None and checked.vs_baseline != "better":
        low, high = checked.poi_ci
        notes.append(f"a held-out check where its lead is {checked.vs_baseline} (P(> default) {low:.2f} to {high:.2f})")
    if config.total_steps != spec.total_steps:
        notes.append(f"the confirmation's budget {config.total_steps:,} env steps (the file: {spec.total_steps:,})")
    values = _winner_values(spec, study, winner)
    before = default_values(spec)
    new = _adopted_text(text, spec, path, values, config)
    changed = {k: v for k, v in values.items() if before.get(k) != v}
    what = f"{winner.label}: IQM {winner.iqm:.1f} on {winner.n} test seeds, P(> default) {winner.poi:.2f}"
    for note in notes:
        print(f"note: study {study.study_name!r} was searched or confirmed with {note}")
    if not changed:
        print(f"{path}'s defaults are already the confirmed winner's ({what}); nothing to change")
        return 0
    for name, value in changed.items():
        print(f"  {name}: {before.get(name, '(none)')!r} -> {value!r}")
    if args.dry_run:
        print(f"would set {len(changed)} default(s) in {path} to the confirmed winner's ({what}); wrote nothing")
        return 0
    _write(path, new)
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
