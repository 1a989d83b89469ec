"""Issue 16: the `hopper` default with a value network of 2 x 128 hidden units, against the default (2 x 256).

    python benchmarks/value_width.py run          # both arms, resumable: rerun to continue
    python benchmarks/value_width.py table        # RESULTS.md from what is stored so far
    python benchmarks/value_width.py snapshot     # consistent copies of the live storages in results/

The value network's half of ``policy_width.py``'s question (read its docstring for why narrower networks): 2 x 128
hidden units in the value network cut its 256 x 256 products to a quarter (about 3/8 of the update), the policy
keeps 2 x 256 (the arm sets it: the shipped file has 2 x 128 since). Its ``default`` arm is ``policy_width.py``'s
(the same runs, kept in ``results/policy-width-hopper/``), so the two candidates are compared with one set of
default runs on one machine. The rule, set before this arm
ran: the `hopper` default takes 2 x 128 in the value network unless the 95% interval of P(``value-128`` beats
``default`` on a fresh seed) lies below 0.5. If both this and ``policy_width.py``'s candidate pass, the default takes
the one with the higher P, never both (both networks at 2 x 128 lost returns: ``small-from-shipped``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _arms  # noqa: E402
from benchmarks.policy_width import ARMS as POLICY_ARMS  # noqa: E402

NAME = "value-width-hopper"
DEFAULT = POLICY_ARMS[0]
CAMPAIGN = _arms.Campaign(
    arms=(
        DEFAULT,
        _arms.Arm(NAME, "value-128", (*_arms.POLICY_256, *_arms.TORCH_ACTING, ("value_layer_sizes", [128, 128]))),
    ),
    section=NAME,
    title="hopper: a value network of 2 x 128 hidden units (issue 16)",
    labels=_arms.Labels(
        intro=(
            "Both arms are the `hopper` default (trial 17 of the `from-shipped` search: m_steps 16, policy network "
            "2 x 256) with the value network at 2 x 256 hidden units (`default`, the study file as it shipped "
            "before this comparison; the runs of the policy-width section) or 2 x 128 (`value-128`)."
        ),
        column="value network",
        rows={"default": "2 x 256 (default)", "value-128": "2 x 128 (value-128)"},
        names={"default": "`default`", "value-128": "`value-128`"},
        script="benchmarks/value_width.py",
    ),
)
ARMS, render = CAMPAIGN.arms, CAMPAIGN.render

if __name__ == "__main__":
    CAMPAIGN.main(__doc__)
