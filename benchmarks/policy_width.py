"""Issue 16: the `hopper` default with a policy network of 2 x 128 hidden units, against the default (2 x 256).

    python benchmarks/policy_width.py run          # both arms, resumable: rerun to continue
    python benchmarks/policy_width.py table        # RESULTS.md from what is stored so far
    python benchmarks/policy_width.py snapshot     # consistent copies of the live storages in results/

On a CPU without fast bfloat16 products (AVX2 only, such as the AMD EPYC development machines) the `hopper`
default's update computes its matrix products in float32 at the CPU's peak rate, and those products are most of a
trial's time; no exact rewrite of the arithmetic reaches issue 16's 0.45 of the raw simulator's speed there. A
narrower network does: 2 x 128 hidden units in the policy cut the policy's 256 x 256 products to a quarter (about
3/8 of the update) and the rollout's policy call with them. The value network keeps 2 x 256. Two narrower
configurations were measured before and lost returns: m_steps 8 (the `fast-from-shipped` arm) and 2 x 128 in both
networks (`small-from-shipped`; BENCHMARKS.md, search efficiency). This one narrows only the policy, which studies
of on-policy methods found the less sensitive of the two to width.

Two arms on the same machine (:mod:`benchmarks._arms`): ``default``, the `hopper` study file as it shipped when the
campaign ran (a 2 x 256 policy: the arm sets it, as the file has 2 x 128 since), and ``policy-128``, the same with
``agent.policy_layer_sizes: [128, 128]``. The rule, set before either arm ran: the
`hopper` default takes 2 x 128 in the policy unless the 95% interval of P(``policy-128`` beats ``default`` on a
fresh seed) lies below 0.5 (a measured loss); the same rule as the bfloat16 change (``precision.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _arms  # noqa: E402

NAME = "policy-width-hopper"
CAMPAIGN = _arms.Campaign(
    arms=(
        _arms.Arm(NAME, "default", (*_arms.POLICY_256, *_arms.TORCH_ACTING)),
        _arms.Arm(NAME, "policy-128", (("policy_layer_sizes", [128, 128]), *_arms.TORCH_ACTING)),
    ),
    section=NAME,
    title="hopper: a policy of 2 x 128 hidden units (issue 16)",
    labels=_arms.Labels(
        intro=(
            "Both arms are the `hopper` default (trial 17 of the `from-shipped` search: m_steps 16, value network "
            "2 x 256) with the policy network at 2 x 256 hidden units (`default`, the study file as it shipped "
            "before this comparison) or 2 x 128 (`policy-128`)."
        ),
        column="policy network",
        rows={"default": "2 x 256 (default)", "policy-128": "2 x 128 (policy-128)"},
        names={"default": "`default`", "policy-128": "`policy-128`"},
        script="benchmarks/policy_width.py",
    ),
)
ARMS, render = CAMPAIGN.arms, CAMPAIGN.render

if __name__ == "__main__":
    CAMPAIGN.main(__doc__)
