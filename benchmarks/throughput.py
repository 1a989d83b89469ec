"""Throughput: the trainer's env steps per second against the raw simulator, same run, one core.

For each configuration, alternates ``--repeats`` times a raw-simulator run (random actions
in Gymnasium's own ``SyncVectorEnv`` with the same autoreset mode, no policy: the yardstick every table here used,
kept although the trainer now steps :class:`vmpo_tune.envs.TrainingVectorEnv`, the same env minus its
per-step info merge) and a training run with the
configuration's evaluation schedule, and reports medians and the ratio trainer / raw. The
training run is timed by phase: environment stepping, acting (the policy's batched call per
step), the V-MPO update, evaluation, the rest (targets, buffers, bookkeeping). Beside it:
the *bare-physics limit*, MuJoCo's ``mj_step`` alone (``frame_skip`` steps per env step, random
controls) on the environment's own model, the ceiling of any Gymnasium-based trainer.

Rows: the study's documented default configuration (``--study``, default ``hopper``: what
users run) and VMPOConfig's ``m_steps: 1`` default with the study's networks and envs (the
old headline). ``--baseline-tree DIR`` also times another checkout of this repository (for
example ``git worktree add /tmp/before HEAD~1``) on the same configurations, alternating,
so a speed-up is a ratio measured in the same run (an agent option the older checkout does not
have runs at that checkout's default there). Results go to BENCHMARKS.md.

    python benchmarks/throughput.py                                  # hopper default + m_steps 1
    python benchmarks/throughput.py --baseline-tree /tmp/before      # ... against an older checkout
    python benchmarks/throughput.py --steps 20000 --repeats 1 --no-write   # quick look
    python benchmarks/throughput.py --profile-update 3               # where the default's update spends its time
    python benchmarks/throughput.py --profile-act 2000               # what one rollout policy call costs

``--profile-update N`` only profiles (``torch.profiler``) N updates of the study default's agent on one batch of
its size (random data: an update's cost does not depend on the values) and prints each operator's share of the
update's CPU time, matrix products first, then the rate of one hidden-layer product at the batch's size in
float32, in float32 at ``matmul_precision: medium`` (inputs rounded to bfloat16 inside the product where oneDNN has
fast bfloat16 kernels for this CPU, float32 elsewhere) and in bfloat16; it writes nothing.

``--profile-act N`` times N rollout policy calls (a ``VMPOAgent.sampler`` on one observation per env, the trainer's
call on every step) of ``VMPOConfig``'s default agent (the ``m_steps: 1`` row's) at the study's number of envs,
with each ``acting`` (``numpy``, the default, and ``torch``), back to back and then as a rollout makes them, each
between two steps of the study's vector env (whose simulator code and data leave the policy's colder in the
caches), then profiles them: the wall time per call both ways, how many PyTorch operator calls one policy call makes
(with ``numpy``, a share of the rollout's one noise draw), their CPU time per call under the profiler and the matrix
products' share of it; it writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from vmpo_tune.cli_common import positive_int  # noqa: E402
from vmpo_tune.config import TrainConfig, VMPOConfig  # noqa: E402
from vmpo_tune.envs import action_scaler, env_dims, make_vector_env  # noqa: E402
from vmpo_tune.provenance import cpu_kind  # noqa: E402
from vmpo_tune.search.spec import default_params, load_spec, params_to_config  # noqa: E402
from vmpo_tune.trainer import VMPOTrainer  # noqa: E402

PHASES = ("env", "act", "update", "evaluate", "rest")

# Runs in the baseline checkout (only APIs every version has): the trainer's env steps per second.
_BASELINE_SNIPPET = """
import dataclasses, json, sys, time, torch
torch.set_num_threads(1)
from vmpo_tune.config import TrainConfig, VMPOConfig
from vmpo_tune.trainer import VMPOTrainer
agent, train, steps = json.loads(sys.argv[1])
known = {f.name for f in dataclasses.fields(VMPOConfig)}  # an older checkout runs a newer option at its default
agent = {k: tuple(v) if isinstance(v, list) else v for k, v in agent.items() if k in known}
trainer = VMPOTrainer.from_configs(VMPOConfig(**agent), TrainConfig(**train))
start = time.perf_counter()
result = trainer.train(steps, None)
print(json.dumps(result.env_steps / (time.perf_counter() - start)))
"""


def raw_rate(env_id: str, num_envs: int, steps: int, seed: int) -> float:
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    try:
        envs.reset(seed=seed)
        envs.action_space.seed(seed)
        start = time.perf_counter()
        for _ in range(steps // num_envs):
            envs.step(envs.action_space.sample())
        return (steps // num_envs) * num_envs / (time.perf_counter() - start)
    finally:
        envs.close()


def bare_physics_rate(env_id: str, steps: int, seed: int) -> float:
    """Env steps per second of ``mj_step`` alone (``frame_skip`` per env step) on the env's model."""
    import mujoco

    env = gym.make(env_id)
    try:
        env.reset(seed=seed)
        base = env.unwrapped
        model, data, skip = base.model, base.data, base.frame_skip
        rng = np.random.default_rng(seed)
        low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
        controls = rng.uniform(low, high, size=(1000, model.nu))
        start = time.perf_counter()
        for i in range(steps):
            data.ctrl[:] = controls[i % 1000]
            mujoco.mj_step(model, data, nstep=skip)
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def _timing(inner, totals: dict, key: str):
    """``inner``, adding the time of each call to ``totals[key]``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start

    return wrapper


def _timed(owner, name: str, totals: dict, key: str) -> None:
    setattr(owner, name, _timing(getattr(owner, name), totals, key))


def _timed_sampler(agent, totals: dict, key: str) -> None:
    """Time the agent's samplers (each rollout's and each evaluation's): building one and every call of it."""
    sampler = _timing(agent.sampler, totals, key)
    agent.sampler = lambda *args, **kwargs: _timing(sampler(*args, **kwargs), totals, key)


def trainer_run(agent: VMPOConfig, train: TrainConfig, steps: int) -> tuple[float, dict[str, float]]:
    """Env steps per second of a full ``train()``, and the share of its time in each phase."""
    trainer = VMPOTrainer.from_configs(agent, train)
    totals = dict.fromkeys(("collect", "act", "update", "evaluate"), 0.0)
    _timed_sampler(trainer.agent, totals, "act")  # the rollouts' policy calls (and the evaluation's)
    _timed(trainer, "_collect", totals, "collect")
    _timed(trainer.agent, "update", totals, "update")
    acting_before_evaluation = []
    evaluate = trainer._evaluate

    def timed_evaluate(*a, **k):  # the evaluation's own policy calls belong to it, not to acting
        acting_before_evaluation.append(totals["act"])
        start = time.perf_counter()
        try:
            return evaluate(*a, **k)
        finally:
            totals["evaluate"] += time.perf_counter() - start
            totals["act"] = acting_before_evaluation.pop()

    trainer._evaluate = timed_evaluate
    start = time.perf_counter()
    result = trainer.train(steps, None)
    wall = time.perf_counter() - start
    env_time = totals["collect"] - totals["act"]
    shares = {
        "env": env_time / wall,
        "act": totals["act"] / wall,
        "update": totals["update"] / wall,
        "evaluate": totals["evaluate"] / wall,
    }
    shares["rest"] = 1.0 - sum(shares.values())
    return result.env_steps / wall, shares


def baseline_rate(tree: Path, agent: VMPOConfig, train: TrainConfig, steps: int) -> float:
    payload = json.dumps([agent.to_dict(), train.to_dict(), steps])
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _BASELINE_SNIPPET, payload],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def product_rate(rows: int, width: int, dtype: torch.dtype, calls: int = 50) -> float:
    """GFLOP/s of a ``rows x width x width`` matrix product in ``dtype`` (the best of 5 timings of ``calls``)."""
    x, w = torch.randn(rows, width).to(dtype), torch.randn(width, width).to(dtype)
    x @ w  # warm-up
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            x @ w
        best = min(best, (time.perf_counter() - start) / calls)
    return 2 * rows * width * width / best / 1e9


def _dims(env_id: str) -> tuple[int, int]:
    """(observation size, action size) of ``env_id``."""
    envs = make_vector_env(env_id, 1, seed=0)
    try:
        return env_dims(envs)
    finally:
        envs.close()


def profile_update(agent: VMPOConfig, train: TrainConfig, env_id: str, updates: int) -> None:
    from torch.profiler import profile

    from vmpo_tune.agent import VMPOAgent, matmul_precision

    obs_dim, act_dim = _dims(env_id)
    n = train.num_envs * train.rollout_steps
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.normal(size=(n, obs_dim)), "actions": rng.normal(size=(n, act_dim)),
        "old_means": 0.1 * rng.normal(size=(n, act_dim)), "old_log_stds": np.full((n, act_dim), -0.5),
        "returns": rng.normal(size=n), "advantages": rng.normal(size=n),
    }  # fmt: skip
    vmpo = VMPOAgent.from_config(obs_dim, act_dim, agent, seed=0)
    vmpo.update(batch)  # warm-up: allocations, MKL's first calls
    with profile() as prof:
        for _ in range(updates):
            vmpo.update(batch)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    products = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm"))
    print(f"{updates} updates of {n:,} samples, m_steps {agent.m_steps}: {total / 1e6 / updates:.3f} CPU-s each")
    print(f"matrix products (aten::mm, aten::addmm): {products / total:.0%} of the update's CPU time")
    for e in events[:12]:
        print(f"  {e.key:<45} {e.self_cpu_time_total / total:6.1%}  ({e.count // updates} calls per update)")
    width = max(agent.policy_layer_sizes + agent.value_layer_sizes)
    for dtype, precision in ((torch.float32, "highest"), (torch.float32, "medium"), (torch.bfloat16, "highest")):
        with matmul_precision(precision):
            rate = product_rate(n, width, dtype)
        at = "" if precision == "highest" else f" at matmul_precision {precision}"
        print(f"one {n:,} x {width} x {width} product in {dtype}{at}: {rate:.1f} GFLOP/s")


def profile_act(agent: VMPOConfig, train: TrainConfig, env_id: str, calls: int) -> None:
    from torch.profiler import profile

    from vmpo_tune.agent import VMPOAgent
    from vmpo_tune.config import ACTINGS

    obs_dim, act_dim = _dims(env_id)
    obs = np.random.default_rng(0).normal(size=(train.num_envs, obs_dim))
    for acting in ACTINGS:
        config = replace(agent, acting=acting)
        sample = VMPOAgent.from_config(obs_dim, act_dim, config, seed=0).sampler(calls=train.rollout_steps)
        warm_up = min(calls, 200)  # calls before each timing: allocations, MKL's first calls
        for _ in range(warm_up):
            sample(obs)
        start = time.perf_counter()
        for _ in range(calls):
            sample(obs)
        wall = (time.perf_counter() - start) / calls
        envs = make_vector_env(env_id, train.num_envs, seed=0)
        try:
            scale = action_scaler(envs.single_action_space)
            env_obs, _ = envs.reset(seed=0)
            between = 0.0
            for i in range(warm_up + calls):
                start = time.perf_counter()
                actions, _ = sample(env_obs)
                if i >= warm_up:
                    between += time.perf_counter() - start
                env_obs = envs.step(scale(actions))[0]
        finally:
            envs.close()
        print(
            f"acting {acting}: one rollout policy call (envs {train.num_envs}, observation size {obs_dim}, action "
            f"size {act_dim}): {wall * 1e6:.0f} us back to back, {between / calls * 1e6:.0f} us between env steps "
            "(as in a rollout)"
        )
        with profile() as prof:
            for _ in range(calls):
                sample(obs)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        products = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm"))
        print(
            f"  under torch.profiler (which adds its own cost to each operator): "
            f"{sum(e.count for e in events) / calls:.2f} ATen operator calls per policy call (nested ones included), "
            f"{total / calls:.0f} us of their CPU time per call, matrix products (aten::mm, aten::addmm) "
            f"{products / total if total else 0:.0%} of it"
        )


def _precision(agent: VMPOConfig) -> str:
    return "" if agent.matmul_precision == "highest" else f", matmul_precision {agent.matmul_precision}"


def configurations(study: str) -> list[tuple[str, VMPOConfig, TrainConfig]]:
    spec = load_spec(study)
    cfg = params_to_config(spec, default_params(spec))
    agent, train = cfg.agent, cfg.train
    plain = VMPOConfig(policy_layer_sizes=agent.policy_layer_sizes, value_layer_sizes=agent.value_layer_sizes)
    plain_train = replace(train, rollout_steps=TrainConfig().rollout_steps)
    return [
        (f"`{spec.name}` default (m_steps {agent.m_steps}{_precision(agent)})", agent, train),
        ("VMPOConfig default (m_steps 1)", plain, plain_train),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="hopper", help="the study whose documented default is the headline row")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run (default 100k: 2 evaluations)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-tree", type=Path, help="another checkout of this repository to time alongside")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--profile-update", type=positive_int, metavar="N", help="only profile N updates (see above)")
    parser.add_argument("--profile-act", type=positive_int, metavar="N", help="only time N policy calls (see above)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.profile_update is not None:
        _, agent, train = configurations(args.study)[0]
        return profile_update(agent, train, train.env_id, args.profile_update)
    if args.profile_act is not None:
        _, agent, train = configurations(args.study)[1]
        return profile_act(agent, train, train.env_id, args.profile_act)
    rows = []
    for label, agent, train in configurations(args.study):
        raws, trains, bases, shares, bare = [], [], [], [], []
        for r in range(args.repeats):
            train_r = replace(train, seed=r)
            raws.append(raw_rate(train.env_id, train.num_envs, args.steps, seed=r))
            rate, share = trainer_run(agent, train_r, args.steps)
            trains.append(rate)
            shares.append(share)
            if args.baseline_tree:
                bases.append(baseline_rate(args.baseline_tree, agent, train_r, args.steps))
            bare.append(bare_physics_rate(train.env_id, args.steps // 4, seed=r))
            print(
                f"{label}, repeat {r}: raw {raws[-1]:,.0f}/s, trainer {rate:,.0f}/s"
                + (f", baseline tree {bases[-1]:,.0f}/s" if bases else "")
                + f", bare physics {bare[-1]:,.0f}/s; "
                + ", ".join(f"{k} {v:.0%}" for k, v in share.items()),
                flush=True,
            )
        rows.append((label, train, raws, trains, bases, shares, bare))
    text = _render(args, rows)
    print(text)
    if not args.no_write:
        write_section(Path(args.out), "throughput", f"Throughput (`{args.study}`)", text)


def _render(args, rows) -> str:
    command = f"python benchmarks/throughput.py --study {args.study} --steps {args.steps} --repeats {args.repeats}"
    if args.baseline_tree:
        command += " --baseline-tree DIR"
    lines = [
        f"`{command}` on {platform.machine()} ({cpu_kind()}, {os.cpu_count()} cores, 1 torch thread, one process), "
        f"{time.strftime('%Y-%m-%d')}. Each training run has the study's evaluation schedule; raw = random actions "
        "in Gymnasium's own `SyncVectorEnv` (same-step autoreset, the yardstick every table here used; the "
        "trainer steps `envs.TrainingVectorEnv`, that env minus its per-step info merge), no policy; bare physics = "
        "`mj_step` "
        "alone. Medians of "
        "the repeats; a ratio is the median of per-repeat ratios (each pair ran back to back), min in brackets.",
        "",
        "| configuration | envs | raw steps/s | trainer steps/s | trainer / raw | "
        + ("baseline tree steps/s | speed-up | " if args.baseline_tree else "")
        + "bare physics steps/s | raw / bare |",
        "|---|---:|---:|---:|---:|" + ("---:|---:|" if args.baseline_tree else "") + "---:|---:|",
    ]
    for label, train, raws, trains, bases, _, bare in rows:
        ratios = [t / w for t, w in zip(trains, raws)]
        cells = [
            label,
            str(train.num_envs),
            f"{statistics.median(raws):,.0f}",
            f"{statistics.median(trains):,.0f}",
            f"**{statistics.median(ratios):.2f}** (min {min(ratios):.2f})",
        ]
        if args.baseline_tree:
            ups = [t / b for t, b in zip(trains, bases)]
            cells += [f"{statistics.median(bases):,.0f}", f"**{statistics.median(ups):.2f}x** (min {min(ups):.2f})"]
        cells += [f"{statistics.median(bare):,.0f}", f"{statistics.median(raws) / statistics.median(bare):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Where a training run's time goes (medians of the repeats):", ""]
    lines += ["| configuration | " + " | ".join(PHASES) + " |", "|---|" + "---:|" * len(PHASES)]
    for label, *_, shares, _ in rows:
        lines.append(
            f"| {label} | " + " | ".join(f"{statistics.median(s[p] for s in shares):.0%}" for p in PHASES) + " |"
        )
    lines += [
        "",
        "env = the vector env's `step` (Gymnasium's Hopper-v5 and our episode statistics), act = the policy's "
        "batched call per step during rollouts, update = the V-MPO update (all M-steps), evaluate = the scheduled "
        "evaluations, rest = targets, buffers and bookkeeping.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
