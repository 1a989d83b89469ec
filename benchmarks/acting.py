"""Issue 16: the `hopper` default acting in NumPy (``acting: numpy``, the default since 2026-12-07) against the same
acting with PyTorch's operators (``acting: torch``, how every earlier run acted).

    python benchmarks/acting.py run          # both arms, resumable: rerun to continue
    python benchmarks/acting.py table        # RESULTS.md from what is stored so far
    python benchmarks/acting.py snapshot     # consistent copies of the live storages in results/

``acting`` (VMPOConfig) says how rollouts and evaluations compute the policy's actions. ``numpy`` computes the same
policy as ``torch`` within float rounding at about a quarter of the cost per call on one CPU core, and draws a
rollout's action noise at once rather than per step: other numbers from the same seed, so the question is the one
issue 16 asks of any default changed for speed: what does it cost in returns?

Two arms on the same machine (:mod:`benchmarks._arms`), each the shipped `hopper` study file with only
``agent.acting`` set.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _arms  # noqa: E402

NAME = "acting-hopper"
CAMPAIGN = _arms.Campaign(
    arms=(
        _arms.Arm(NAME, "torch", _arms.TORCH_ACTING),
        _arms.Arm(NAME, "numpy", (("acting", "numpy"),)),
    ),
    section=NAME,
    title="hopper: acting in NumPy (issue 16)",
    labels=_arms.Labels(
        intro=(
            "Both arms are the `hopper` default as it ships (trial 17 of the `from-shipped` search: m_steps 16, a "
            "2 x 128 policy, `matmul_precision: medium`) with only `acting` set: `torch` computes the rollouts' and "
            "evaluations' actions with PyTorch's operators and draws the noise on every step (how every other "
            "table's runs acted), `numpy` with NumPy and the noise drawn once per rollout."
        ),
        column="acting",
        rows={"torch": "`torch`", "numpy": "`numpy`"},
        names={"torch": "`torch`", "numpy": "`numpy`"},
        script="benchmarks/acting.py",
    ),
)
ARMS, render = CAMPAIGN.arms, CAMPAIGN.render

if __name__ == "__main__":
    CAMPAIGN.main(__doc__)
