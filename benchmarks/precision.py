"""Issue 16: the `hopper` default with its update's matrix products in bfloat16, against the same in float32.

    python benchmarks/precision.py run          # both arms, resumable: rerun to continue
    python benchmarks/precision.py table        # RESULTS.md from what is stored so far
    python benchmarks/precision.py snapshot     # consistent copies of the live storages in results/

``matmul_precision: medium`` (VMPOConfig) lets PyTorch round the inputs of the update's float32 matrix products to
bfloat16 where oneDNN has fast kernels for that (CPUs with AMX or AVX-512 BF16), about four times faster products
on an AMX CPU; everything else stays float32. That changes the arithmetic, so the question is the one issue 16
asks of any default changed for speed: what does it cost in returns?

Two arms on the same machine (:mod:`benchmarks._arms`), each the shipped `hopper` study file with
``agent.matmul_precision`` set, ``highest`` (float32) or ``medium``, and its policy at 2 x 256 hidden units, as it
was when they ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _arms  # noqa: E402

NAME = "precision-hopper"
CAMPAIGN = _arms.Campaign(
    arms=(
        _arms.Arm(NAME, "float32", (*_arms.POLICY_256, *_arms.TORCH_ACTING, ("matmul_precision", "highest"))),
        _arms.Arm(NAME, "bfloat16", (*_arms.POLICY_256, *_arms.TORCH_ACTING, ("matmul_precision", "medium"))),
    ),
    section=NAME,
    title="hopper: the update's products in bfloat16 (issue 16)",
    labels=_arms.Labels(
        intro=(
            "Both arms are the `hopper` default (trial 17 of the `from-shipped` search: m_steps 16, 2 x 256 layers) "
            "with only `matmul_precision` set: `highest` computes the update's matrix products in float32 (what "
            "every other hopper table ran), `medium` lets PyTorch round their inputs to bfloat16 where oneDNN "
            "multiplies that faster."
        ),
        column="update's products",
        rows={"float32": "`highest` (float32)", "bfloat16": "`medium` (bfloat16)"},
        names={"float32": "`highest`", "bfloat16": "`medium`"},
        script="benchmarks/precision.py",
    ),
)
ARMS, render = CAMPAIGN.arms, CAMPAIGN.render

if __name__ == "__main__":
    CAMPAIGN.main(__doc__)
