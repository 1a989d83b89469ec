"""One study's table of RESULTS.md: the confirmed winner, the study default and baselines on the same test seeds.

    python benchmarks/results_table.py --study hopper --run-dir runs/hopper --ppo ppo-hopper.json \\
        --machine "16-core x86_64 (device machine)" --search-command "..." --ppo-command "..."
    python benchmarks/results_table.py --study walker2d --pending     # a study with no confirmation yet

A pending section says so (the study file's ``status``), gives the commands that will produce the
table and the published numbers it will be read against (:data:`PUBLISHED`, from ANCHORS.md).

The winner and the default come from the study's confirmation (python -m vmpo_tune.confirm):
their final returns on the test seeds, which no tuning run used. PPO's come from
benchmarks/ppo_baseline.py run on the same seeds, and ``--baseline`` rows (e.g. uniform random actions,
benchmarks/random_baseline.py) likewise. Every row gets IQM and mean with 95%
percentile-bootstrap CIs (vmpo_tune.stats, SciPy's bootstrap), median, range and the
per-seed returns; the section says how much search and confirmation cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import write_section  # noqa: E402
from vmpo_tune import records, stored_study  # noqa: E402
from vmpo_tune.search.study import recorded_simulator  # noqa: E402
from vmpo_tune.stats import bootstrap_ci, iqm  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
HEADER = (
    "# Results\n\nEvery row is a final-policy return (deterministic evaluation, raw returns) on test seeds that no "
    "tuning run used, summarised by the interquartile mean (IQM) and the mean with 95% percentile-bootstrap "
    "confidence intervals over seeds (rliable's practice). Each section names its machine, its seeds and the "
    "commands that reproduce it; `benchmarks/results_table.py` writes it.\n"
)


PUBLISHED = {  # env id: (what, return) at 1M env steps unless stated, as ANCHORS.md lists them
    "Hopper-v5": [("PPO, rl-zoo3 (tuned, 1 run)", "2,410"), ("PPO, CleanRL (3 seeds)", "2,383"),
                  ("TRPO, rl-zoo3", "3,618"), ("TD3, rl-zoo3", "3,606")],
    "HalfCheetah-v5": [("PPO, rl-zoo3 (tuned, 1 run)", "5,819"), ("PPO, CleanRL (3 seeds)", "1,443"),
                       ("TRPO, rl-zoo3", "1,785"), ("TD3, rl-zoo3", "9,656")],
    "Walker2d-v5": [("PPO, rl-zoo3 (tuned, 1 run)", "3,479"), ("PPO, CleanRL (3 seeds)", "2,288"),
                    ("TRPO, rl-zoo3", "4,933"), ("TD3, rl-zoo3", "4,718")],
    "dm_control/walker/walk": [("PPO, CleanRL (10 seeds, after 8M steps)", "about 300-400"),
                               ("RPO, CleanRL (10 seeds, after 8M steps)", "787")],
    "dm_control/cheetah/run": [("PPO, CleanRL (10 seeds, after 8M steps)", "about 430-470"),
                               ("RPO, CleanRL (10 seeds, after 8M steps)", "566")],
}  # fmt: skip


def published_line(env_id: str, lead: str) -> list[str]:
    """A paragraph of :data:`PUBLISHED`'s numbers for ``env_id`` (none when there are none), marked as not ours."""
    published = PUBLISHED.get(env_id)
    if not published:
        return []
    shown = "; ".join(f"{what} {value}" for what, value in published)
    return ["", f"{lead} (ANCHORS.md; not run here, at 1M env steps unless stated): {shown}."]


def pending(study: str) -> None:
    """The section of a study that has no confirmation yet: its status, the commands, the published numbers."""
    from benchmarks.search_efficiency import CHEAPER, ROOT
    from benchmarks.search_efficiency import RESULTS as CAMPAIGN
    from benchmarks.study_results import QUEUE
    from vmpo_tune.search.spec import load_spec

    spec = load_spec(study)
    arm = next((c.arm for c in CHEAPER if c.study == study), None)
    search = f"python -m vmpo_tune.search --study {study} --trials 60 --workers 2 --confirm-top 3 --confirm-seeds 10"
    if study in QUEUE:
        how = (
            f"To produce this section: `python benchmarks/study_results.py run --studies {study}` (the study's default "
            "confirmed on the test seeds first, then a search and its best trials confirmed beside the default; "
            "resumable: rerun it to continue, also from the storage it keeps in "
            f"`results/studies/{study}.db`), then `python benchmarks/study_results.py tables --studies {study}`."
        )
    elif arm is not None:  # an arm of the strategy benchmark
        kept = (CAMPAIGN / f"{arm}.db").relative_to(ROOT)
        how = (
            f"To produce this section: `python benchmarks/search_efficiency.py run --arms {arm}` (resumable: rerun "
            f"it to continue, also from the storage it keeps in `{kept}`), then `python benchmarks/results_table.py "
            f'--study {study} --storage sqlite:///{kept} --machine "..." --search-command "..."`.'
        )
    else:
        how = (
            f"To produce this section: `{search}` (resumable: rerun it to continue), then "
            f'`python benchmarks/results_table.py --study {study} --run-dir runs/{study} --machine "..." '
            f'--search-command "{search}"`.'
        )
    lines = [
        f"{spec.env_id}, {spec.total_steps:,} env steps per run. **No confirmation has been run for this study yet**: "
        f"{spec.status}.",
        "",
        how,
    ]
    lines += published_line(spec.env_id, "Published numbers it will be read against")
    write_section(RESULTS, f"results-{study}", f"{study} ({spec.env_id})", "\n".join(lines), header=HEADER)
    print(f"wrote the pending {study} section of {RESULTS}")


def same_seeds(data: dict, seeds: list[int], path: str) -> list[float]:
    """The final returns of a baseline JSON in the order of ``seeds``, which it must have run exactly."""
    by_seed = {r["seed"]: r["final_return"] for r in data["results"]}
    if sorted(by_seed) != sorted(seeds):
        raise SystemExit(f"{path} ran seeds {sorted(by_seed)}, the confirmation {sorted(seeds)}: use the same")
    return [by_seed[s] for s in seeds]


def row(name: str, seeds: list[int], returns: list[float], command: str, score: float | None = None) -> str:
    lo, hi = bootstrap_ci(returns, "iqm")
    mlo, mhi = bootstrap_ci(returns, "mean")
    mean = sum(returns) / len(returns)
    median = statistics.median(returns)
    per_seed = " ".join(f"{r:,.0f}" for r in returns)
    shown = "" if score is None else f"{score:,.0f}"
    return (
        f"| {name} | **{iqm(returns):,.0f}** [{lo:,.0f}, {hi:,.0f}] | {mean:,.0f} [{mlo:,.0f}, {mhi:,.0f}] | "
        f"{median:,.0f} | {min(returns):,.0f} to {max(returns):,.0f} | {per_seed} | {shown} | `{command}` |"
    )


def held_out_lines(args: argparse.Namespace, checked: list, winner_label: str) -> list[str]:
    """The held-out check's rows (``confirm --held-out``): the confirmed winner (``winner_label``) and the default on
    seeds nothing chose, and the probability that the winner beats the default there; none when no check ran. A
    study that searched on may hold an earlier round's winner's check too: its row says so."""
    if not checked:
        return []
    seeds = checked[0].seeds
    command = (
        args.held_out_command or f"python -m vmpo_tune.confirm --study {args.study} --held-out --seeds {len(seeds)}"
    )
    lines = [
        "",
        f"Held-out check: the confirmed winner and the default trained again on seeds {seeds[0]}-{seeds[-1]}, which "
        "neither the search nor the confirmation used (the winner's numbers above are on the seeds that chose it):",
        "",
        "| configuration | IQM [95% CI] | mean [95% CI] | median | min to max | per seed | search score | reproduce |",
        "|---|---:|---:|---:|---|---|---:|---|",
    ]
    for c in checked:
        if c.is_baseline:
            name = c.label + (" (the previous study default)" if args.default_now else " (study default)")
        else:
            roles = [] if c.label == winner_label else ["an earlier round's confirmed winner"]
            roles += ["the study default now"] if c.label == args.default_now else []
            name = c.label + (f" ({', '.join(roles)})" if roles else "")
        lines.append(row(name, c.seeds, c.returns, command, c.search_score))
    winner = next((c for c in checked if c.label == winner_label and not c.is_baseline), None)
    if winner is not None:
        lines += [
            "",
            f"P({winner.label} > the default) on the held-out seeds: {winner.poi:.2f} "
            f"[{winner.poi_ci[0]:.2f}, {winner.poi_ci[1]:.2f}] ({winner.vs_baseline}).",
        ]
    return lines


def adopt_lines(args: argparse.Namespace) -> list[str]:
    """How the candidate the study file now ships as its default got there: the ``adopt`` command."""
    if not args.default_now:
        return []
    command = args.adopt_command or f"python -m vmpo_tune.adopt --study {args.study}"
    return [
        "",
        f"The study default since the confirmation: {args.default_now}'s exact values, which `{command}` writes "
        "into the study file.",
    ]


def budget_line(study, storage, units: list) -> str:
    """What the search, the confirmation (``units``) and the held-out check, if any, cost."""
    trials = study.get_trials(deepcopy=False)
    held_out = stored_study.load_companion(storage, study.study_name, held_out=True)
    extra = held_out.get_trials(deepcopy=False) if held_out else []
    return (
        f"Search: {len(trials)} trial{'' if len(trials) == 1 else 's'} "
        f"({records.budget_counts(trials).complete} complete), "
        f"{records.env_steps(trials) / 1e6:.1f}M env steps, {records.cpu_hours(trials):.1f} CPU hours; confirmation: "
        f"{len(units)} runs, {records.env_steps(units) / 1e6:.1f}M env steps, {records.cpu_hours(units):.1f} CPU hours"
        + (
            f"; held-out check: {len(extra)} runs, {records.env_steps(extra) / 1e6:.1f}M env steps, "
            f"{records.cpu_hours(extra):.1f} CPU hours."
            if extra
            else "."
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", required=True)
    p.add_argument("--pending", action="store_true", help="write the section of a study with no confirmation yet")
    p.add_argument("--storage")
    p.add_argument("--run-dir")
    p.add_argument("--ppo", help="JSON written by benchmarks/ppo_baseline.py on the same seeds")
    p.add_argument("--machine", help="where the runs ran, in words")
    p.add_argument("--search-command")
    p.add_argument("--ppo-command", default="")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="JSON",
        help="another row on the same seeds, from a JSON in ppo_baseline.py's format with its 'algorithm' and "
        "'command' (benchmarks/random_baseline.py writes one); repeatable",
    )
    p.add_argument(
        "--confirm-command",
        help="the reproduce column's command: the confirmation as it ran, storage included (default: the study's "
        "plain confirm command, which confirms on the default storage of the study file it runs with)",
    )
    p.add_argument(
        "--held-out-command",
        help="the held-out rows' command, storage included (default: the study's plain confirm --held-out command)",
    )
    p.add_argument(
        "--adopt-command",
        help="with --default-now: the command that made it the study file's default, storage included (default: "
        "the study's plain adopt command)",
    )
    p.add_argument("--note", default="", help="a closing sentence (how the whole section was produced)")
    p.add_argument("--out", type=Path, default=RESULTS, help="the Markdown file to write the section into")
    p.add_argument(
        "--default-now",
        metavar="LABEL",
        help="the candidate the study file now ships as its default (e.g. 'trial 17'); the confirmation's default "
        "is then the previous one",
    )
    args = p.parse_args()
    if args.pending:
        return pending(args.study)
    if not (args.machine and args.search_command):
        p.error("--machine and --search-command are needed for a confirmed study's table")
    study, _, storage = stored_study.open_existing_study(args.study, args.storage, args.run_dir)
    ranked = records.read_confirmation(study)
    if not ranked:
        raise SystemExit(f"study {args.study} has no confirmation; run python -m vmpo_tune.confirm first")
    seeds = ranked[0].seeds
    if args.default_now and args.default_now not in [c.label for c in ranked]:
        p.error(f"--default-now {args.default_now!r} is not a confirmed candidate; one of {[c.label for c in ranked]}")
    companion = stored_study.load_companion(storage, study.study_name)
    plan = records.read_confirm_plan(companion) if companion else records.ConfirmPlan()
    top = sum(c.source_trial is not None and c.label != "default" for c in plan.candidates)
    confirm = (
        args.confirm_command or f"python -m vmpo_tune.confirm --study {args.study} --top {top} --seeds {len(seeds)}"
    )
    lines = [
        "| configuration | IQM [95% CI] | mean [95% CI] | median | min to max | per seed | search score | reproduce |",
        "|---|---:|---:|---:|---|---|---:|---|",
    ]
    for rank, c in enumerate(ranked, 1):
        roles = ["confirmed winner"] if rank == 1 else []
        if c.label == args.default_now:
            roles.append("the study default now")
        elif c.is_baseline:
            roles.append("the previous study default" if args.default_now else "study default")
        name = c.label + (f" ({', '.join(roles)})" if roles else "")
        lines.append(row(name, c.seeds, c.returns, confirm, c.search_score))
    if args.ppo:
        ppo = json.loads(Path(args.ppo).read_text())
        lines.append(
            row("SB3 PPO, rl-zoo3 tuned Hopper settings", seeds, same_seeds(ppo, seeds, args.ppo), args.ppo_command)
        )
    for path in args.baseline:
        data = json.loads(Path(path).read_text())
        lines.append(row(data["algorithm"], seeds, same_seeds(data, seeds, path), data["command"]))
    lines += [
        "",
        "The search score is a trial's return on the tuning seed(s); every other column is on the test seeds.",
    ]
    lines += held_out_lines(args, records.read_held_out(study), ranked[0].label)
    info = records.read_study_info(study)
    simulator = recorded_simulator(study) or "not recorded"
    budget = budget_line(study, storage, companion.get_trials(deepcopy=False) if companion else [])
    body = "\n".join(
        [
            f"{info.env_id}, {info.total_steps:,} env steps per run, final deterministic evaluation "
            f"({info.eval_episodes} episodes), test seeds {seeds[0]}-{seeds[-1]} (tuning seeds {info.tuning_seeds}). "
            f"Machine: {args.machine}; simulator: {simulator}; {dt.date.today().isoformat()}.",
            "",
            *lines,
            "",
            budget,
            "",
            f"Search: `{args.search_command}`.",
            *adopt_lines(args),
            *([] if args.ppo else published_line(info.env_id, "Published numbers, not on these seeds")),
            *([""] + [args.note] if args.note else []),
        ]
    )
    write_section(args.out, f"results-{args.study}", f"{args.study} ({info.env_id})", body, header=HEADER)
    print(f"wrote the {args.study} section of {args.out}")


if __name__ == "__main__":
    main()
