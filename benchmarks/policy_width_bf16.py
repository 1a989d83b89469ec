"""Issue 16: the `hopper` default as it ships (a 2 x 128 policy, the update's products in bfloat16), against the same
with a 2 x 256 policy, on a CPU that computes those products in bfloat16 (an Intel Xeon with AMX).

    python benchmarks/policy_width_bf16.py run          # the policy-128 arm, resumable: rerun to continue
    python benchmarks/policy_width_bf16.py table        # RESULTS.md from what is stored so far
    python benchmarks/policy_width_bf16.py snapshot     # consistent copies of the live storages in results/

The two changes the `hopper` default took for speed were each measured for returns alone: bfloat16 products with a
2 x 256 policy on an AMX CPU (``precision.py``), a 2 x 128 policy in float32 on an AVX2 CPU (``policy_width.py``).
On an AMX CPU the shipped default runs both at once, which neither campaign measured. This one does, on the machine
kind where the combination is what runs.

Its ``bfloat16`` arm is ``precision.py``'s (the same runs, kept in ``results/precision-hopper/``: a 2 x 256 policy
and ``matmul_precision: medium``, on an Intel Xeon with AMX); reusing them holds only where this machine
reproduces them, so before ``policy-128`` ran here the tuning-seed run of that arm was trained again with
``train --config`` and gave its stored score bit for bit (RESULTS.md's notes on this section say how).
``policy-128`` is the shipped default as it ran: ``policy_layer_sizes: [128, 128]``, ``matmul_precision: medium``
(and ``acting: torch``, the default then), set explicitly. The rule, set before it ran: the `hopper` default keeps its
2 x 128 policy unless the 95% interval of P(``policy-128`` beats ``bfloat16`` on a fresh seed) lies below 0.5 (a
measured loss); then it goes back to a 2 x 256 policy.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _arms  # noqa: E402
from benchmarks.precision import ARMS as PRECISION_ARMS  # noqa: E402

NAME = "policy-width-hopper-bf16"
BFLOAT16 = PRECISION_ARMS[1]
SHIPPED = (("policy_layer_sizes", [128, 128]), ("matmul_precision", "medium"), *_arms.TORCH_ACTING)
CAMPAIGN = _arms.Campaign(
    arms=(BFLOAT16, _arms.Arm(NAME, "policy-128", SHIPPED)),
    section=NAME,
    title="hopper: a policy of 2 x 128 hidden units with the update's products in bfloat16 (issue 16)",
    labels=_arms.Labels(
        intro=(
            "Both arms are the `hopper` default (trial 17 of the `from-shipped` search: m_steps 16, value network "
            "2 x 256) with the update's products in bfloat16 (`matmul_precision: medium` on a CPU with AMX) and the "
            "policy network at 2 x 256 hidden units (`bfloat16`, the runs of the precision section) or 2 x 128 "
            "(`policy-128`, the default as it ships)."
        ),
        column="policy network",
        rows={"bfloat16": "2 x 256 (bfloat16)", "policy-128": "2 x 128 (policy-128)"},
        names={"bfloat16": "`bfloat16`", "policy-128": "`policy-128`"},
        script="benchmarks/policy_width_bf16.py",
    ),
)
ARMS, render = CAMPAIGN.arms, CAMPAIGN.render

if __name__ == "__main__":
    CAMPAIGN.main(__doc__)
