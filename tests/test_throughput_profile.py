"""benchmarks/throughput.py --profile-update: where an update spends its time, and what a product costs."""

from __future__ import annotations

import re
import subprocess
import sys

from .search_helpers import ROOT


def test_profile_update_gives_the_products_share_and_both_precisions_rates():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--study", "demo", "--profile-update", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    share = re.search(r"matrix products \(aten::mm, aten::addmm\): (\d+)% of the update's CPU time", proc.stdout)
    assert share and 0 < int(share.group(1)) <= 100, proc.stdout
    rates = dict(re.findall(r"product in torch\.(float32|bfloat16): ([\d.]+) GFLOP/s", proc.stdout))
    assert set(rates) == {"float32", "bfloat16"} and all(float(r) > 0 for r in rates.values()), proc.stdout
