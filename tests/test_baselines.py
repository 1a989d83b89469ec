"""Baseline rows on a confirmation's test seeds: benchmarks/random_baseline.py and results_table.py --baseline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from benchmarks.random_baseline import ALGORITHM, returns

from .search_helpers import ROOT


def test_random_actions_are_evaluated_like_a_final_evaluation_and_repeat_exactly():
    first = returns("InvertedPendulum-v5", 3, [1000, 1001])
    assert first == returns("InvertedPendulum-v5", 3, [1000, 1001])
    assert [r["seed"] for r in first] == [1000, 1001]
    for r in first:
        assert len(r["episode_returns"]) == 3 and r["final_return"] == sum(r["episode_returns"]) / 3
        # a random policy drops the pole within a few dozen steps (reward 1 per step); the trained ones hold 1,000
        assert all(1 <= e <= 100 for e in r["episode_returns"]), r
    assert first[0]["episode_returns"] != first[1]["episode_returns"]  # each seed its own episodes and actions


def run_table(tmp_path, baseline: dict):
    db, js = tmp_path / "halfcheetah.db", tmp_path / "b.json"
    shutil.copy(ROOT / "results" / "studies" / "halfcheetah.db", db)
    js.write_text(json.dumps(baseline))
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "results_table.py"), "--study", "halfcheetah"]
        + ["--storage", f"sqlite:///{db}", "--out", str(tmp_path / "R.md"), "--machine", "m", "--search-command", "s"]
        + ["--baseline", str(js)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_a_baseline_json_becomes_a_row_on_the_same_seeds_and_other_seeds_are_refused(tmp_path):
    results = [{"seed": s, "final_return": 7.0} for s in range(1000, 1010)]  # the kept confirmation's seeds
    proc = run_table(tmp_path, {"algorithm": ALGORITHM, "command": "python x.py", "results": results})
    assert proc.returncode == 0, proc.stderr
    (line,) = [r for r in (tmp_path / "R.md").read_text().splitlines() if r.startswith(f"| {ALGORITHM}")]
    assert line == f"| {ALGORITHM} | **7** [7, 7] | 7 [7, 7] | 7 | 7 to 7 | {' '.join(['7'] * 10)} |  | `python x.py` |"
    proc = run_table(tmp_path, {"algorithm": ALGORITHM, "command": "c", "results": results[:9]})
    assert proc.returncode != 0 and "the confirmation [1000," in proc.stderr
