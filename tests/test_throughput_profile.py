"""benchmarks/throughput.py --profile-update and --profile-act: what an update and a rollout policy call cost."""

from __future__ import annotations

import re
import subprocess
import sys

from .search_helpers import ROOT


def _throughput(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--study", "demo", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_profile_update_gives_the_products_share_and_each_precisions_rate():
    proc = _throughput("--profile-update", "1")
    share = re.search(r"matrix products \(aten::mm, aten::addmm\): (\d+)% of the update's CPU time", proc.stdout)
    assert share and 0 < int(share.group(1)) <= 100, proc.stdout
    kinds = r"float32|float32 at matmul_precision medium|bfloat16"
    rates = dict(re.findall(rf"product in torch\.({kinds}): ([\d.]+) GFLOP/s", proc.stdout))
    assert set(rates) == {"float32", "float32 at matmul_precision medium", "bfloat16"}, proc.stdout
    assert all(float(r) > 0 for r in rates.values()), proc.stdout


def test_profile_act_times_one_rollout_policy_call_at_the_studys_envs():
    proc = _throughput("--profile-act", "50")
    # InvertedPendulum-v5: 4 observations, 1 action; the demo study steps 1 env (studies/demo.yaml).
    for acting in ("numpy", "torch"):
        wall = re.search(
            rf"acting {acting}: one rollout policy call \(envs 1, observation size 4, action size 1\): "
            r"(\d+) us back to back, (\d+) us between env steps",
            proc.stdout,
        )
        assert wall and int(wall.group(1)) > 0 and int(wall.group(2)) > 0, proc.stdout
    ops = re.findall(
        r"([\d.]+) ATen operator calls per policy call .*matrix products \(aten::mm, aten::addmm\) (\d+)%", proc.stdout
    )
    assert len(ops) == 2, proc.stdout
    (numpy_ops, numpy_products), (torch_ops, torch_products) = ((float(n), int(p)) for n, p in ops)
    # numpy: no product in PyTorch, and the noise of a rollout (the demo's 256 steps) drawn in one call at most
    assert numpy_ops <= 1 and numpy_products == 0, proc.stdout
    # torch: three linear layers (two hidden, the mean head) at least, and products are part of the time, not all of it
    assert torch_ops >= 3 and 0 < torch_products < 100, proc.stdout


def test_a_timed_training_run_puts_the_rollouts_policy_calls_in_act_and_its_shares_add_up():
    from dataclasses import replace

    from benchmarks import throughput

    _, agent, train = throughput.configurations("demo")[0]
    steps = 4 * train.batch_size
    rate, shares = throughput.trainer_run(agent, replace(train, eval_interval=2 * train.batch_size), steps)
    assert rate > 0 and set(shares) == set(throughput.PHASES)
    # each phase ran (acting through the sampler the trainer takes once per rollout), and they partition the wall time
    assert all(0 < shares[phase] < 1 for phase in ("env", "act", "update", "evaluate")), shares
    assert abs(sum(shares.values()) - 1) < 1e-9
