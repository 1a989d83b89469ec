"""Imports run one way: every module has a layer, imports never point up, and nothing imports in a circle.

The layers (ARCHITECTURE.md, "Layers"; bottom to top): ground (no project imports but each other), the
pieces the agent is made of, the agent, the trainer, the stored-study format, the
search, the analysis, the command lines. Within the search the modules are ordered
too. A new module must be given its place here, which is the point: placing it is a
decision, and this test keeps it true.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vmpo_tune", "analysis")

GROUND = 0
LAYERS: dict[str, float] = {
    # ground: configuration, pure maths and the small shared utilities
    "vmpo_tune": GROUND,
    "vmpo_tune.errors": GROUND,
    "vmpo_tune.metrics": GROUND,
    "vmpo_tune.validate": GROUND,
    "vmpo_tune.redaction": GROUND,
    "vmpo_tune.config": GROUND,
    "vmpo_tune.losses": GROUND,
    "vmpo_tune.stats": GROUND,
    "vmpo_tune.schedules": GROUND,
    "vmpo_tune.targets": GROUND,
    "vmpo_tune.cli_common": GROUND,
    "vmpo_tune.provenance": GROUND,
    "vmpo_tune.tblog": GROUND,
    "vmpo_tune.paths": GROUND,
    "vmpo_tune.simulator": GROUND,
    "vmpo_tune.optuna_private": GROUND,
    "vmpo_tune.study_names": GROUND,
    # the DeepMind Control adapter, under the env factory that uses it
    "vmpo_tune.dmc": 0.9,
    # what the agent and the trainer are made of; the storage layer
    "vmpo_tune.networks": 1,
    "vmpo_tune.envs": 1,
    "vmpo_tune.envstate": 1,
    "vmpo_tune.evaluation": 1,
    "vmpo_tune.rollout": 1,
    "vmpo_tune.video": 1,
    "vmpo_tune.storage_urls": 0.8,
    "vmpo_tune.storage_faults": 0.85,
    "vmpo_tune.storage": 1,
    "vmpo_tune.budget_lock": 1,
    "vmpo_tune.cli_flags": 1.1,
    "vmpo_tune.agent": 2,
    "vmpo_tune.trainer": 3,
    "vmpo_tune.playback": 3,
    # the stored-study format, and the note built from it: right above the storage layer (no torch, no gymnasium)
    "vmpo_tune.records": 1.5,
    "vmpo_tune.stored_study": 1.55,
    "vmpo_tune.notes": 1.6,
    "vmpo_tune.runfile": 1.6,
    # the search, bottom to top
    "vmpo_tune.search": 5,
    "vmpo_tune.search.catalog": 5.1,
    "vmpo_tune.search.racing": 5.1,
    "vmpo_tune.search.pruning": 5.0,
    "vmpo_tune.search.yamlfile": 5.05,
    "vmpo_tune.search.studyfiles": 5.1,
    "vmpo_tune.search.studyedit": 5.1,
    "vmpo_tune.search.widening": 5.1,
    "vmpo_tune.search.space": 5.15,
    "vmpo_tune.search.spec": 5.2,
    "vmpo_tune.search.enqueue": 5.25,
    "vmpo_tune.search.liveness": 5.3,
    "vmpo_tune.search.settings": 5.35,
    "vmpo_tune.search.study": 5.4,
    "vmpo_tune.search.runner": 5.4,
    "vmpo_tune.search.objective": 5.5,
    "vmpo_tune.search.confirmation": 5.5,
    "vmpo_tune.search.factories": 5.5,
    "vmpo_tune.search.worker": 5.6,
    "vmpo_tune.search.worker_entry": 5.65,
    "vmpo_tune.search.progress": 5.6,
    "vmpo_tune.search.launch": 5.7,
    "vmpo_tune.search.stage": 5.8,
    # reading stored studies
    "analysis": 6,
    "analysis.tables": 6,
    "analysis.figures": 6,
    "analysis.dashboard": 6,
    # command lines, and the next steps they suggest
    "vmpo_tune.next_steps": 6.5,
    "vmpo_tune.search.cli": 7,
    "vmpo_tune.search.__main__": 7.1,
    "vmpo_tune.confirm": 7,
    "vmpo_tune.export": 7,
    "vmpo_tune.adopt": 7,
    "vmpo_tune.train": 7,
    "vmpo_tune.play": 7,
    "vmpo_tune.proxy": 7,
    "analysis.report": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (function-local imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_layer():
    missing = sorted(set(project_modules()) - set(LAYERS))
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


def test_no_import_points_up():
    upward = [
        f"{a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]})"
        for a, targets in graph().items()
        for b in targets
        if a in LAYERS and b in LAYERS and LAYERS[b] > LAYERS[a] and b != a.rpartition(".")[0]
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, " -> ".join(cycle)


def test_the_checker_resolves_relative_and_function_local_imports(tmp_path):
    """A check that cannot fail is no check: the walk must see these two imports, one of them upward."""
    path = tmp_path / "vmpo_tune" / "search" / "spec.py"
    path.parent.mkdir(parents=True)
    path.write_text("from ..trainer import VMPOTrainer\n\n\ndef f():\n    from .cli import main\n")
    known = {"vmpo_tune", "vmpo_tune.trainer", "vmpo_tune.search", "vmpo_tune.search.cli", "vmpo_tune.search.spec"}
    found = imports_of("vmpo_tune.search.spec", path, known)
    assert found == {"vmpo_tune.trainer", "vmpo_tune.search.cli"}
    assert LAYERS["vmpo_tune.search.cli"] > LAYERS["vmpo_tune.search.spec"]  # the second one points up


def test_reading_a_stored_study_imports_neither_torch_nor_gymnasium():
    """The stored format, the tables and the note are read by the report, export and the dashboard note:
    they must not pull in the trainer's heavy imports."""
    import subprocess
    import sys

    code = (
        "import sys; import vmpo_tune.records, vmpo_tune.notes, vmpo_tune.runfile, analysis.tables; "
        "print(sorted(m for m in ('torch', 'gymnasium', 'mujoco') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_search_and_confirm_commands_import_no_torch():
    """Their workers are separate processes that import the trainer; the command itself plans, shows progress
    and waits (``--workers 1`` imports the worker when it runs it). tests/test_search_cli.py checks a whole run."""
    import subprocess
    import sys

    code = "import sys; import vmpo_tune.search.cli, vmpo_tune.confirm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
