"""Every shipped study tuned and confirmed at its full budget, as a resumable campaign on whatever cores there are.

    python benchmarks/study_results.py run                    # the whole queue, resumable: rerun to continue
    python benchmarks/study_results.py run --studies walker2d # one study
    python benchmarks/study_results.py snapshot               # consistent copies of the live storages in results/
    python benchmarks/study_results.py tables                 # RESULTS.md sections of the confirmed studies
    python benchmarks/study_results.py status                 # how far each study got

Three stages, each over the studies of :data:`QUEUE` in order (Hopper at 1M first, then the studies that ship
untested defaults):

1. ``default``: the study's default alone (a one-trial ``search``, then ``confirm --top 1``) on the 10 test seeds
   (1000-1009, which no tuning run uses), so every study has a confirmed baseline, and Hopper at 1M its answer,
   before any search starts.
2. ``search``: the same storage extended to an ordinary ``search`` of :data:`TRIALS` trials (:data:`MORE_TRIALS`
   for a study that searches on; the study's own sampler and pruner; the default is its trial 0, already run) and
   ``confirm --top 3`` of its best distinct trials beside the default on the same seeds (the default's units are
   not run again), in the order of :data:`SEARCH_QUEUE`: the studies whose confirmed default is furthest from its
   target first. A search starts with what the searches before it found: the confirmed winner of each earlier
   study (unless that is its default) is queued beside the default (``search --enqueue``; :func:`transfers`). The
   studies share one search space, so a winner on one task is a valid trial on the next
   (``tests/test_study_results.py``).
3. ``held-out``: once every search is confirmed, in the same order, the confirmed winner and the default trained
   again on seeds 2000-2009 (``confirm --held-out``), which neither the search nor the confirmation used: the
   winner was chosen on seeds 1000-1009 among three, so its numbers there flatter it (RESULTS.md, hopper). Nothing
   runs for a study whose default won.

Each study has its own SQLite file under ``runs/study-results/`` with the checkpoints, so a killed campaign
continues where it stopped when rerun. After each step the storage is
copied consistently (SQLite's backup) to ``results/studies/NAME.db``, which is kept in the repository: on a new
machine ``run`` continues from that copy, and ``tables`` writes RESULTS.md from it
(``benchmarks/results_table.py``).

Cost, measured on the 2-core development machine on 2026-11-30 (two workers, one core each): a 1M-step run of the
``hopper-1m`` default took 268-288 s, of ``halfcheetah`` 505-550 s, of ``walker2d`` 672-700 s and of
``walker-walk`` 661 s (with nothing else running beside the two workers); stage ``default`` (one trial, then 10
units two at a time) took 28 minutes for ``hopper-1m``, 56 for ``halfcheetah`` and 83 for ``walker2d`` (both slowed
by a test suite running beside them). Stage ``search`` (29 new trials, some pruned at 300k steps, then 3 new
configurations x 10 seeds) took ``halfcheetah`` 3.4 CPU hours of search (9 of its trials pruned) and 5.2 of
confirmation, about 4.5 hours on the two cores (2026-11-30 to 12-01, partly beside a test suite).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._campaign import (  # noqa: E402
    backup,
    cli,
    confirmation_done,
    continue_from_kept,
    keep_copies,
    load_campaign_study,
    results_per_candidate,
)
from vmpo_tune import records  # noqa: E402
from vmpo_tune.search.confirmation import BASELINE  # noqa: E402
from vmpo_tune.search.space import params_to_values  # noqa: E402
from vmpo_tune.search.spec import default_values, load_spec  # noqa: E402

QUEUE = ("hopper-1m", "halfcheetah", "walker2d", "walker-walk", "cheetah-run")
"""The studies in the order the campaign runs them (issue 18: Hopper at 1M first; ``cheetah-run``, the optional
second DeepMind Control study, last)."""
SEARCH_QUEUE = ("halfcheetah", "walker-walk", "walker2d", "hopper-1m", "cheetah-run")
"""The order of stage ``search``, by how far each confirmed default is from its target (RESULTS.md):
``halfcheetah``'s (IQM 1,381) is below CleanRL's PPO (1,443), ``walker-walk``'s (414) below the 600 goal,
``walker2d``'s (3,017) already above CleanRL's PPO (2,288), and ``hopper-1m``'s met its target; ``cheetah-run``,
added after the others were searched, comes last."""
TRIALS, CONFIRM_TOP, CONFIRM_SEEDS, TEST_SEED_START = 30, 3, 10, 1000
MORE_TRIALS = {"walker-walk": 130}
"""Studies whose stage ``search`` goes on past :data:`TRIALS` trials in the same storage. ``walker-walk``'s winner after
30 (trial 31, IQM 545 on the test seeds) was below its 600 goal, and so were its winners after 50 (trial 35, IQM 592
on the test seeds, 524 on the held-out seeds) and after 70 (trial 65, 616 on the test seeds but 581 on the held-out
seeds, RESULTS.md). A fourth round to 90 (2026-12-02) put no new trial among the best 3 by search score (its best
scored 683 on the tuning seed, the third best before it 773), so ``confirm --top 3`` planned nothing new; its best 7
(:data:`MORE_TOP`) added trials 57, 52 and 74, which confirmed at IQM 605, 536 and 432, behind trial 65. A fifth
round to 110 put trials 99 and 103 (search scores 870 and 740) among the best 7; they confirmed at IQM 446 and 554,
behind trial 65. A sixth round to 130 searches a wider space: ``init_log_std`` reaches 1.0, not 0.0, since the
search's best trials crowded that bound (studies/walker-walk.yaml), and the stored study goes on in it
(``vmpo_tune/search/widening.py``), its last 13 trials without pruning (the median pruner's bar at 300k steps would
have pruned trial 65 on each of its test seeds; studies/walker-walk.yaml). Its TPE search, past its random start-up,
runs 20 more trials each round (the sixth found trial 128, ``init_log_std`` 0.525: IQM 645 on the test seeds, ahead
of trial 65, and 704 on the held-out seeds, past the goal; 2026-12-03), and its best trials by search score are
confirmed beside the default; a candidate confirmed before keeps its units (``confirm`` adds only what is new), so
the confirmed winner is the best of every candidate any round confirmed, and a new winner gets its own held-out check
(the best of more candidates flatters its test seeds more: the goal counts as reached on the held-out seeds)."""
MORE_TOP = {"walker-walk": 7}
"""Trials a study of :data:`MORE_TRIALS` confirms beside the default in its current round, where not
:data:`CONFIRM_TOP`. A round's best new trials rank below the lucky single-seed scores of the rounds before it,
which keep the first places by search score (walker-walk's confirmed candidates scored 97 to 386 less on the test
seeds than on their one tuning seed), so ``confirm --top 3`` plans nothing new. ``walker-walk`` confirms its best 7
distinct trials at 90: the four among them confirmed before (31, 65, 71, 35) keep their units, and 57, 52 and 74
(search scores 772, 698 and 683; 74 is the fourth round's best) are new. A number, not a rule such as "the best 3
not confirmed yet": that one names other trials once those are planned, so a rerun after a kill would plan more
instead of finishing what it started, whereas ``--top K`` plans the same trials every time. A later round's trial
is confirmed once it ranks among the best 7 (at 90 trials: a search score above 683)."""
LIVE = ROOT / "runs" / "study-results"
KEPT = ROOT / "results" / "studies"
BASELINES = ROOT / "results" / "baselines"
"""Rows beside a study's confirmation on its test seeds: ``<study>.<kind>.json`` (``random``: random_baseline.py)."""


def live_db(study: str) -> Path:
    return LIVE / f"{study}.db"


def kept_db(study: str) -> Path:
    return KEPT / f"{study}.db"


STAGES = {"default": (1, 1), "search": (TRIALS, CONFIRM_TOP), "held-out": (TRIALS, CONFIRM_TOP)}
"""Stage: (search trials, confirmed trials beside the default), in the order the campaign runs them (a study of
:data:`MORE_TRIALS` searches more: :func:`stage_plan`). Stage ``held-out`` adds no search trial nor candidate: it
trains the search stage's confirmed winner and the default again on seeds 2000-2009 (``confirm --held-out``), when
the winner is not the default."""


def stage_plan(study: str, stage: str) -> tuple[int, int]:
    """(search trials, confirmed trials beside the default) of ``study`` in ``stage``."""
    trials, top = STAGES[stage]
    return (MORE_TRIALS.get(study, trials), confirm_top(study)) if stage != "default" else (trials, top)


def confirm_top(study: str) -> int:
    """How many of its best distinct trials ``study``'s search stage confirms beside the default (:data:`MORE_TOP`)."""
    return MORE_TOP.get(study, CONFIRM_TOP)


def stage_order(stage: str, studies: list[str]) -> list[str]:
    """The studies in the order ``run`` takes them in ``stage``: :data:`QUEUE`'s, or :data:`SEARCH_QUEUE`'s."""
    return sorted(studies, key=(QUEUE if stage == "default" else SEARCH_QUEUE).index)


def winner_file(study: str) -> Path:
    """Where a study's confirmed winner is kept as an exported run file, for the searches after it."""
    return KEPT / f"{study}.winner.yaml"


def transfers(study: str) -> list[str]:
    """The studies whose confirmed winner stage ``search`` of ``study`` queues first: those before it in
    :data:`SEARCH_QUEUE` whose stage ``search`` is done and whose winner is not their default (at :data:`TRIALS`: a
    study that searches on (:data:`MORE_TRIALS`) passes on its first round's winner, :func:`export_winner`)."""
    out = []
    for source in SEARCH_QUEUE[: SEARCH_QUEUE.index(study)]:
        data = load_campaign_study(source, kept_db(source), confirm_top(source))
        if stage_done(data, "search") and not data["confirmation"][0].is_baseline:
            out.append(source)
    return out


def export_winner(source: str) -> Path:
    """The confirmed winner of ``source`` as a run file (:func:`winner_file`), exported from its kept storage once."""
    path = winner_file(source)
    if not path.exists():
        cli("vmpo_tune.export", "--study", source, "--storage", f"sqlite:///{kept_db(source)}", "--out", str(path))
    return path


def enqueued(data: dict) -> list[Path]:
    """The run files a stored search queued trials from, as kept in :data:`KEPT` (for the command it shows)."""
    files = (records.enqueued_file(t.user_attrs) for t in data["trials"])
    return list(dict.fromkeys(KEPT / Path(f).name for f in files if f))


def default_now(study: str, data: dict) -> str | None:
    """The confirmed candidate (not the confirmation's default) whose configuration values the study file now ships
    as its default, if one does: a study adopts its search's winner by copying that trial's exact values. Values,
    not Optuna's parameters: a transformed parameter (``one_minus_gamma``) is stored as sampled, unrounded."""
    spec = load_spec(study, check_env=False)
    shipped = default_values(spec)
    values = {t.number: params_to_values(spec.space, t.params) for t in data["trials"]}
    adopted = (c for c in data["confirmation"] if not c.is_baseline and values.get(c.source_trial) == shipped)
    return next((c.label for c in adopted), None)


def search_command(study: str, workers: int, trials: int = TRIALS, enqueue: list[Path] = ()) -> list[str]:
    return [
        "vmpo_tune.search", "--study", study, "--trials", str(trials), "--out", str(LIVE / study),
        "--storage", f"sqlite:///{live_db(study)}", "--workers", str(workers),
        *[arg for path in enqueue for arg in ("--enqueue", str(path))],
    ]  # fmt: skip


def confirm_command(study: str, workers: int, top: int = CONFIRM_TOP) -> list[str]:
    return [
        "vmpo_tune.confirm", "--study", study, "--run-dir", str(LIVE / study), "--top", str(top),
        "--seeds", str(CONFIRM_SEEDS), "--test-seed-start", str(TEST_SEED_START),
        "--storage", f"sqlite:///{live_db(study)}", "--workers", str(workers),
    ]  # fmt: skip


def held_out_command(study: str, workers: int) -> list[str]:
    return [
        "vmpo_tune.confirm", "--study", study, "--run-dir", str(LIVE / study), "--held-out", "--seeds",
        str(CONFIRM_SEEDS), "--storage", f"sqlite:///{live_db(study)}", "--workers", str(workers),
    ]  # fmt: skip


def adopt_command(study: str) -> list[str]:
    return ["vmpo_tune.adopt", "--study", study, "--storage", f"sqlite:///{live_db(study)}"]


def won_by_default(data: dict) -> bool:
    """The search stage's confirmed winner is the study's default: a held-out check has nothing to compare."""
    return bool(data["confirmation"]) and data["confirmation"][0].is_baseline


def shown(command: list[str]) -> str:
    """A command as RESULTS.md shows it: ``python -m ...`` with this campaign's paths relative to the repository."""
    return "python -m " + " ".join(a.replace(f"{ROOT}/", "") for a in command)


def stage_done(data: dict | None, stage: str, trials: int = TRIALS) -> bool:
    """Whether a stored study has finished ``stage``. ``default``: the default has a result on every test seed.
    ``search``: the search has its ``trials`` (:func:`stage_plan`), its confirmation planned more than the default
    alone and every candidate ``confirm --top`` would plan now (a kill between the search and the confirmation's
    planning leaves a search round's new best trials unplanned), and each planned one has a result on every test
    seed. ``held-out``: the search stage is done, and its confirmed winner (the current one: a study that searched
    on may hold an earlier round's too) and the default have a result on every held-out seed, or the default won."""
    if not data:
        return False
    if stage == "default":
        done = results_per_candidate(data)
        return data["finished"] >= 1 and any(c.is_baseline and done[c.label] >= CONFIRM_SEEDS for c in data["planned"])
    planned = {c.key for c in data["planned"]}
    searched = (
        data["finished"] >= trials
        and len(planned) > 1
        and set(data["wanted"]) <= planned
        and confirmation_done(data, CONFIRM_SEEDS)
    )
    if stage == "search" or not searched:
        return searched
    if won_by_default(data):
        return True
    checked = results_per_candidate(data, "held_out_units")  # an earlier round's winner may be there too
    return min(checked[data["confirmation"][0].label], checked[BASELINE]) >= CONFIRM_SEEDS


def run_study(study: str, workers: int, stage: str) -> None:
    (LIVE / study).mkdir(parents=True, exist_ok=True)
    continue_from_kept(live_db(study), kept_db(study))
    trials, top = stage_plan(study, stage)
    if stage_done(load_campaign_study(study, live_db(study), confirm_top(study)), stage, trials):
        print(f"{study}: stage {stage!r} confirmed; nothing to run", flush=True)
        return
    if stage == "held-out":
        if not stage_done(load_campaign_study(study, live_db(study), confirm_top(study)), "search", trials):
            print(f"{study}: stage 'search' not confirmed yet; no held-out check", flush=True)
            return
        cli(*held_out_command(study, workers))
        backup(live_db(study), kept_db(study))
        return
    enqueue = [export_winner(source) for source in transfers(study)] if stage == "search" else []
    cli(*search_command(study, workers, trials, enqueue))
    backup(live_db(study), kept_db(study))
    cli(*confirm_command(study, workers, top))
    backup(live_db(study), kept_db(study))


def searching_on(stage: str | None, data: dict | None) -> bool:
    """A study of :data:`MORE_TRIALS` past a confirmed search round, in its next one: only stage ``default`` counts
    as done again, but its confirmation already holds candidates beside the default."""
    return stage == "default" and len(data["planned"]) > 1


def reached(study: str, data: dict | None) -> str | None:
    """The last stage a stored study has finished, or None."""
    done = [stage for stage in STAGES if stage_done(data, stage, stage_plan(study, stage)[0])]
    return done[-1] if done else None


def status(studies: list[str]) -> None:
    for study in studies:
        data = load_campaign_study(study, kept_db(study), confirm_top(study))
        if data is None:
            print(f"{study}: not started")
            continue
        units = sum(t.state.is_finished() for t in data["units"])
        checked = sum(t.state.is_finished() for t in data["held_out_units"])
        stage = reached(study, data)
        done = f"stage {stage!r} confirmed" if stage else "no stage confirmed"
        if searching_on(stage, data):
            done += ", an earlier search round's too: searching on (MORE_TRIALS)"
        print(
            f"{study}: {data['finished']} / {stage_plan(study, 'search')[0]} search trials finished"
            f", {units} confirmation units finished"
            + (f", {checked} held-out units finished" if checked else "")
            + f"; {done} ({data['simulator']})"
        )


def baselines(study: str) -> list[Path]:
    """The study's baseline rows kept in :data:`BASELINES` (``<study>.<kind>.json``, benchmarks/random_baseline.py)."""
    return sorted(BASELINES.glob(f"{study}.*.json"))


def tables(studies: list[str], machine: str, workers: int) -> None:
    for study in studies:
        data = load_campaign_study(study, kept_db(study), confirm_top(study))
        stage = reached(study, data)
        if stage is None:
            print(f"{study}: not confirmed yet; its section stays as it is")
            continue
        if searching_on(stage, data):
            print(f"{study}: its search stage is not confirmed yet at {stage_plan(study, 'search')[0]} trials; its "
                  "section stays as it is")  # fmt: skip
            continue
        trials, top = stage_plan(study, stage)
        so_far = (
            ""
            if stage != "default"
            else (
                f" So far the default alone (stage {stage!r}); the search of {TRIALS} trials and the confirmation of "
                f"its best {CONFIRM_TOP} beside the default are the campaign's next stage (the same command continues)."
            )
        )
        cli(
            "benchmarks.results_table", "--study", study, "--storage", f"sqlite:///{kept_db(study)}",
            "--machine", machine, "--search-command", shown(search_command(study, workers, trials, enqueued(data))),
            "--confirm-command", shown(confirm_command(study, workers, top)),
            "--held-out-command", shown(held_out_command(study, workers)),
            "--adopt-command", shown(adopt_command(study)),
            *(("--default-now", label) if (label := default_now(study, data)) else ()),
            *[arg for path in baselines(study) for arg in ("--baseline", str(path))],
            "--note", f"The whole section, runs included: `python benchmarks/study_results.py run --studies {study}` "
            f"(then `... tables`; on a new machine it continues from the study storage kept in "
            f"`{kept_db(study).relative_to(ROOT)}`, which the search and confirmation commands above then use from "
            f"`{LIVE.relative_to(ROOT)}`).{so_far}",
        )  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("run", "snapshot", "tables", "status"))
    p.add_argument("--studies", nargs="+", default=list(QUEUE), choices=QUEUE, help="in the queue's order")
    p.add_argument("--workers", type=int, default=2, help="worker processes per step (default 2)")
    p.add_argument("--machine", default=f"the {os.cpu_count()}-core {os.uname().machine} development machine")
    args = p.parse_args()
    studies = [s for s in QUEUE if s in args.studies]
    if args.command == "run":
        for stage in STAGES:
            for study in stage_order(stage, studies):
                run_study(study, args.workers, stage)
    elif args.command == "snapshot":
        keep_copies((live_db(study), kept_db(study)) for study in studies)
    elif args.command == "status":
        status(studies)
    else:
        tables(studies, args.machine, args.workers)


if __name__ == "__main__":
    main()
