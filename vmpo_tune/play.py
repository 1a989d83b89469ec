"""python -m vmpo_tune.play: watch a trained policy: run it, print its returns, film it.

--config FILE plays a run of a file written by python -m vmpo_tune.export: its best
checkpoint (the one the file names, from the search's artifact store; else one an
earlier python -m vmpo_tune.train wrote; else the run is trained first, on its own seed
and budget, which is the same run the search did). --study NAME plays the best trial
of a stored study (the confirmed one when the study has a confirmation) and, with
--video, attaches the video to the study as an artifact named after the trial, which
optuna-dashboard plays on the study's page.

Episodes are deterministic (the policy mean). By default they are the run's own
evaluation episodes, so the mean printed is the return its best evaluation recorded.
Videos are rendered headless by MuJoCo (MUJOCO_GL=egl by default; osmesa works too):
every episode in its own tile, stepped together.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from . import records, stored_study, video
from .cli_common import Parser, add_common_flags, configure_logging, positive_int, run_cli
from .cli_flags import STUDY_HELP, StudyFlag, add_stored_study_flags
from .errors import UserError
from .evaluation import EvalResult
from .export import BY, build_document
from .paths import BEST_CHECKPOINT
from .playback import load_agent, play_episodes
from .runfile import RunFile, load_run, parse_run
from .trainer import VMPOTrainer

log = logging.getLogger("vmpo_tune.play")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m vmpo_tune.play", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="run file written by python -m vmpo_tune.export")
    which.add_argument("--study", action=StudyFlag, help="play the best trial of this stored study: " + STUDY_HELP)
    p.add_argument("--rank", type=positive_int, default=1, help="which run of the file or study (default 1, the best)")
    p.add_argument("--checkpoint", help="play this checkpoint file (a run's best.pt) instead")
    p.add_argument("--episodes", type=positive_int, help="episodes (default: the run's evaluation episodes)")
    p.add_argument("--seed", type=int, help="seed of the first episode (default: the run's evaluation seed)")
    p.add_argument("--video", metavar="FILE.mp4", help="film the episodes into this MP4 file (needs the video extra)")
    tile = "x".join(str(v) for v in video.DEFAULT_TILE)
    p.add_argument("--size", default=tile, help=f"width x height of each episode's picture (default {tile})")
    p.add_argument("--fps", type=positive_int, help="frames per second (default: the environment's, real time)")
    p.add_argument(
        "--full-quality",
        action="store_true",
        help="render MuJoCo's shadows, reflections and antialiasing (about 9x slower without a GPU)",
    )
    p.add_argument(
        "--no-attach", action="store_true", help="with --study: do not attach the video to the study as an artifact"
    )
    add_stored_study_flags(p, study=False, artifacts=True, condition="with --study: ")
    p.add_argument("--by", choices=BY, help="with --study: rank by confirmation or search score (as export does)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_common_flags(p)
    return p


@dataclasses.dataclass(frozen=True)
class Target:
    """What to play: a run, and (with --study) the stored study its video is attached to."""

    run: RunFile
    study: optuna.Study | None = None
    artifact_dir: Path | None = None


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must be WIDTHxHEIGHT in pixels, e.g. 320x240; got {text!r}") from None
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise UserError(f"--size must be between 16x16 and 4096x4096 pixels; got {text!r}")
    return width, height


def find_target(args: argparse.Namespace) -> Target:
    if args.config:
        return Target(load_run(args.config, args.rank))
    study, url, storage = stored_study.open_existing_study(args.study, args.storage, args.run_dir)
    artifact_dir = Path(args.artifact_dir) if args.artifact_dir else records.artifact_dir(args.study, args.run_dir)
    companion = stored_study.load_companion(storage, study.study_name)
    doc = build_document(study, url, args.rank, args.by, companion, artifact_dir)
    return Target(parse_run(doc, f"study {study.study_name!r}", args.rank), study, artifact_dir)


def find_checkpoint(run: RunFile, given: str | None) -> Path:
    """The checkpoint to play: the one given, the run's stored one, an earlier train run's, or a new one."""
    if given:
        return Path(given)
    if run.checkpoint is not None and run.checkpoint.is_file():
        return run.checkpoint
    if run.checkpoint is not None:
        log.warning("the run's checkpoint %s is not on this machine", run.checkpoint)
    seed = run.first_seed
    trained = run.default_out() / f"seed_{seed}" / BEST_CHECKPOINT
    if trained.is_file():
        log.info("playing the checkpoint an earlier train run wrote: %s", trained)
        return trained
    log.info(
        "no checkpoint of %s yet: training it on seed %d for %s env steps first (the run the search did)",
        run.name,
        seed,
        f"{run.config.total_steps:,}",
    )
    train = dataclasses.replace(run.config.train, seed=seed, checkpoints=True)
    trainer = VMPOTrainer.from_configs(run.config.agent, train)
    result = trainer.train(run.config.total_steps, trained.parent)
    log.info("trained: best return %.1f at %d env steps", result.best_return, result.best_step)
    return trained


def episode_seeds(run: RunFile, episodes: int | None, first: int | None) -> list[int]:
    """The run's own evaluation seeds (of its first seed's run), or ``first``, ``first + 1``, ..."""
    n = episodes or run.config.train.eval_episodes
    if first is None:
        first = dataclasses.replace(run.config.train, seed=run.first_seed).resolved_eval_seed
    return [first + i for i in range(n)]


def attach(target: Target, path: Path) -> str:
    """Upload the video as an artifact of the study (a finished trial takes no new artifacts in Optuna),
    named after the trial it shows; optuna-dashboard lists it on the study's page."""
    study, run = target.study, target.run
    assert study is not None and target.artifact_dir is not None
    target.artifact_dir.mkdir(parents=True, exist_ok=True)
    named = path.with_name(records.video_artifact_name(run.trial, run.first_seed))
    if named != path:
        shutil.copyfile(path, named)
    try:
        return upload_artifact(
            artifact_store=FileSystemArtifactStore(str(target.artifact_dir)),
            file_path=str(named),
            study_or_trial=study,
            mimetype=records.VIDEO_MIMETYPE,
        )
    finally:
        if named != path:
            named.unlink()


def play(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)  # the arithmetic of a search worker: the recorded returns come back exactly
    size = parse_size(args.size)
    if args.video:
        video.check_available()
        if not args.video.lower().endswith(".mp4"):
            raise UserError(f"--video writes an MP4 file; name it FILE.mp4, got {args.video!r}")
    target = find_target(args)
    run = target.run
    agent = load_agent(find_checkpoint(run, args.checkpoint), args.device)
    seeds = episode_seeds(run, args.episodes, args.seed)
    result = play_episodes(agent, run.config.train.env_id, seeds, args.video, size, args.fps, args.full_quality)
    _print_returns(run, seeds, result)
    if args.video:
        print(f"video: {args.video} ({len(seeds)} episode(s) side by side)")
        if target.study is not None and not args.no_attach:
            artifact_id = attach(target, Path(args.video))
            print(
                f"attached to study {target.study.study_name!r} as artifact {artifact_id}: optuna-dashboard shows it "
                f"with --artifact-dir {target.artifact_dir}"
            )
    return 0


def _print_returns(run: RunFile, seeds: list[int], result: EvalResult) -> None:
    for seed, ret, length in zip(seeds, result.returns, result.lengths):
        print(f"episode seed {seed}: return {ret:.1f} ({length} steps)")
    score = "" if run.score is None else f"; its search score was {run.score:.1f}"
    print(f"{run.name} of {run.study}: mean return {result.mean:.1f} over {len(seeds)} episode(s){score}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_cli(lambda: play(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
