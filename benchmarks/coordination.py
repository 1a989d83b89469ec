"""The coordination layer under load: many worker processes running tiny real trials, so that storage calls,
heartbeats, stale-trial scans and the budget lock dominate.

    python benchmarks/coordination.py                                   # 8, 32, 64 workers x 3 backends
    python benchmarks/coordination.py --workers 64                      # the 64-worker cells, merged with the kept ones
    python benchmarks/coordination.py --workers 8 --backends postgres --results - --out -   # a smoke test
    python benchmarks/coordination.py --workers 64 --backends proxy --heartbeat-interval 10   # default liveness

Per backend (PostgreSQL directly, the gRPC proxy in front of PostgreSQL, Optuna's journal in Redis) and
worker count N: one ``search`` command with ``--workers N`` and ``--trials 3N`` on the ``demo`` study cut to
``--total-steps 1024`` (two evaluations of one episode), with one worker SIGKILLed mid-trial; then a
``confirm --top 2 --seeds 4`` on the same storage. Reported:

* trials per second of the search (wall clock, start-up included);
* storage work per finished trial: PostgreSQL transactions committed (``pg_stat_database.xact_commit``) for
  the two PostgreSQL backends, Redis commands (``INFO commandstats``) for Redis;
* coordination overhead per trial: the search's worker-seconds (wall x N) not spent inside a trial's own
  run (the trials' recorded wall time), per finished trial, and that as a share of a ``hopper`` trial's
  time (``studies/hopper.yaml``'s measured seconds per trial);
* extra CPU per trial: the search's CPU seconds (every process it waited for, and the proxy's) per finished
  trial, minus the CPU per trial of the same tiny trials run by one worker alone on SQLite (measured once
  per run), and that as a share of a ``hopper`` trial; unlike wall time, CPU time is not inflated by
  processes queueing for the cores, so this is the coordination cost a machine with a core per worker
  would pay;
* the most PostgreSQL connections the study's database held at once (sampled every 0.2 s; one of them is
  this script's own reader);
* the invariants: exactly 3N finished trials, 0 RUNNING, the killed worker's trial retried, every
  confirmation (candidate, seed) unit once.

On a 2-core machine, 64 processes mostly wait for the CPU: the overhead measured there is contention as much
as coordination, and the table says which machine it ran on. Every cell measured is kept in
``results/coordination.json`` (a rerun of a cell replaces it), and the section shows all kept cells, so the
worker counts can be run one at a time. Needs the loopback services
(``bash scripts/services``) and ``.[postgres,redis,grpc]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "coordination.json"
"""The kept measurements of every cell run so far (the section in BENCHMARKS.md shows them all)."""
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from vmpo_tune import records  # noqa: E402
from vmpo_tune.search.spec import load_spec  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/15"
TINY = ("--total-steps", "1024", "--eval-interval", "512", "--eval-episodes", "1")
FAST_HEARTBEAT = 2
"""Seconds between heartbeats unless --heartbeat-interval says otherwise: short, so the killed worker's trial is
noticed (after 4 heartbeats) well within a cell."""


def liveness(heartbeat: int) -> tuple[str, ...]:
    return ("--heartbeat-interval", str(heartbeat), "--grace-period", str(4 * heartbeat))


def python(*args: str, cwd: Path, log: Path, background: bool = False):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if background:
        return proc
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed; see {log}")
    return proc


class PgDatabase:
    """A fresh PostgreSQL database, its transaction counter and a sampler of its connections."""

    def __init__(self) -> None:
        self.admin = sqlalchemy.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        self.name = f"vmpo_load_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {self.name}"))
        self.url = f"postgresql://postgres@127.0.0.1:5432/{self.name}"
        self.max_connections, self._stop = 0, threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def commits(self) -> int:
        with self.admin.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_stat_clear_snapshot()"))
            query = "SELECT xact_commit FROM pg_stat_database WHERE datname = :d"
            return int(conn.execute(sqlalchemy.text(query), {"d": self.name}).scalar() or 0)

    def _sample(self) -> None:
        query = sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d")
        with self.admin.connect() as conn:
            while not self._stop.wait(0.2):
                self.max_connections = max(self.max_connections, int(conn.execute(query, {"d": self.name}).scalar()))

    def __enter__(self) -> PgDatabase:
        self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sampler.join()
        with self.admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"))
        self.admin.dispose()


def redis_commands() -> int:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        return sum(int(v["calls"]) for k, v in client.info("commandstats").items() if k.startswith("cmdstat_"))
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_one_worker(url, stop: threading.Event) -> dict:
    """SIGKILL the worker of the first trial seen RUNNING with an evaluation; returns what it killed."""
    killed: dict = {}
    while not stop.wait(0.2):
        try:
            trials = optuna.load_study(study_name="demo", storage=url).get_trials(deepcopy=False)
        except Exception:  # not created yet, or the storage busy: look again
            continue
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        if running:
            pid = running[0].user_attrs[records.PROVENANCE]["pid"]
            os.kill(pid, signal.SIGKILL)
            return {"trial": running[0].number, "pid": pid}
    return killed


def one_cell(backend: str, workers: int, folder: Path, heartbeat: int = FAST_HEARTBEAT) -> dict:
    """One backend at one worker count: the search with a kill, then the confirmation; measurements and invariants."""
    log = folder / f"{backend}-{workers}.log"
    proxy = None
    pg = PgDatabase() if backend in ("postgres", "proxy") else None
    try:
        if pg is not None:
            pg.__enter__()
        if backend == "redis":
            import redis

            redis.Redis.from_url(REDIS).flushdb()
            url, read_url = REDIS, REDIS
        elif backend == "proxy":
            port = free_port()
            proxy = python("vmpo_tune.proxy", "--storage", pg.url, "--port", str(port), cwd=folder, log=log,
                           background=True)  # fmt: skip
            time.sleep(5)
            url, read_url = f"grpc://127.0.0.1:{port}", pg.url
        else:
            url, read_url = pg.url, pg.url
        if backend == "redis":
            from optuna.storages.journal import JournalRedisBackend, JournalStorage

            read_url = JournalStorage(JournalRedisBackend(REDIS))
        else:  # the benchmark's own reader: a connection per read (it may be in the table's maximum)
            read_url = optuna.storages.RDBStorage(pg.url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})
        work_before = redis_commands() if backend == "redis" else pg.commits()
        stop = threading.Event()
        result: dict = {}
        killer = threading.Thread(target=lambda: result.update(kill_one_worker(read_url, stop)), daemon=True)
        killer.start()
        start, cpu_before = time.perf_counter(), children_cpu() + process_cpu(proxy)
        search = python("vmpo_tune.search", "--study", "demo", "--trials", str(3 * workers), "--workers",
                        str(workers), "--storage", url, "--out", str(folder / f"run-{backend}-{workers}"), *TINY,
                        *liveness(heartbeat), "--force", cwd=folder, log=log, background=True)  # fmt: skip
        search.wait()
        wall, cpu = time.perf_counter() - start, children_cpu() + process_cpu(proxy) - cpu_before
        stop.set()
        killer.join()
        # the killed worker's trial: its command may end first (the others wait for the heartbeat to go stale)
        rerun = ("vmpo_tune.search", "--study", "demo", "--trials", str(3 * workers), "--workers", "2")
        python(*rerun, "--storage", url, "--out", str(folder / f"run-{backend}-{workers}"), *TINY, *liveness(heartbeat),
               cwd=folder, log=log)  # fmt: skip
        work = (redis_commands() if backend == "redis" else pg.commits()) - work_before
        trials = optuna.load_study(study_name="demo", storage=read_url).get_trials(deepcopy=False)
        counts = records.budget_counts(trials)
        inside = sum(float(t.user_attrs.get(records.WALL_TIME) or 0.0) for t in trials)
        python("vmpo_tune.confirm", "--study", "demo", "--storage", url, "--run-dir",
               str(folder / f"run-{backend}-{workers}"), "--top", "2", "--seeds", "4", "--workers",
               str(min(workers, 8)), *liveness(heartbeat), cwd=folder, log=log)  # fmt: skip
        units = optuna.load_study(study_name=records.confirm_study_name("demo"), storage=read_url).get_trials()
        pairs = [(u.user_attrs.get(records.CANDIDATE), tuple(records.read_seeds(u))) for u in units]
        return {
            "backend": backend,
            "workers": workers,
            "date": dt.date.today().isoformat(),
            "heartbeat_s": heartbeat,
            "wall_s": wall,
            "finished": counts.finished,
            "running": counts.running,
            "trials_per_s": counts.finished / wall,
            "work_per_trial": work / max(counts.finished, 1),
            "overhead_s_per_trial": max(0.0, wall * workers - inside) / max(counts.finished, 1),
            "cpu_s_per_trial": cpu / max(counts.finished, 1),
            "max_pg_connections": pg.max_connections if pg is not None else None,
            "killed": result,
            "retried": any(t.system_attrs.get(records.RETRY_OF) == result.get("trial") for t in trials),
            "units_once": len(pairs) == len(set(pairs)),
            "target": 3 * workers,
        }
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
        if pg is not None:
            pg.__exit__(None, None, None)


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process this one has waited for, their own children included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(proc: subprocess.Popen | None) -> float:
    """CPU seconds a running child (the proxy) has used so far, from /proc (0 without one); the proxy's work is
    coordination too."""
    if proc is None:
        return 0.0
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def baseline_cpu_per_trial(folder: Path, heartbeat: int = FAST_HEARTBEAT) -> float:
    """CPU seconds per trial of the same tiny trials run by one worker alone on SQLite (3 trials, as each worker of
    a cell runs): what a trial costs without other workers to coordinate with."""
    start = children_cpu()
    python("vmpo_tune.search", "--study", "demo", "--trials", "3", "--workers", "1", "--out", str(folder / "alone"),
           *TINY, *liveness(heartbeat), cwd=folder, log=folder / "alone.log")  # fmt: skip
    return (children_cpu() - start) / 3


def _key(cell: dict) -> tuple:
    return cell["backend"], cell["workers"], cell.get("heartbeat_s", FAST_HEARTBEAT)


def merge(path: Path, new: list[dict]) -> list[dict]:
    """The kept cells with ``new`` in place of the same (backend, workers) ones, written back; in table order."""
    kept = json.loads(path.read_text()) if path.exists() else []
    fresh = {_key(c) for c in new}
    cells = [c for c in kept if _key(c) not in fresh] + new
    order = {"postgres": 0, "proxy": 1, "redis": 2}
    cells.sort(key=lambda c: (c["workers"], order.get(c["backend"], 9), c.get("heartbeat_s", FAST_HEARTBEAT)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cells, indent=1) + "\n")
    return cells


def backend_label(cell: dict) -> str:
    beat = cell.get("heartbeat_s", FAST_HEARTBEAT)
    return cell["backend"] if beat == FAST_HEARTBEAT else f"{cell['backend']} (heartbeat {beat} s)"


def render(cells: list[dict], machine: str) -> str:
    hopper = float(load_spec("hopper", check_env=False).timing.get("seconds_per_trial", 104))
    lines = [
        f"`python benchmarks/coordination.py` on {' / '.join(sorted({c.get('machine', machine) for c in cells}))} "
        f"({', '.join(sorted({c.get('date', '?') for c in cells}))}): "
        "the `demo` study cut to 1,024 env steps per trial, "
        "3 trials per worker, one worker SIGKILLed mid-trial, then `confirm --top 2 --seeds 4`. Overhead = "
        f"worker-seconds not spent inside a trial's run, per finished trial; its share is of a `hopper` trial "
        f"({hopper:.0f} s). Storage work = PostgreSQL commits (direct and proxy) or Redis commands, per trial. "
        "Extra CPU = the search's CPU seconds per trial (all its processes) minus those of the same trials run by "
        "one worker alone on SQLite: what coordinating N workers costs in CPU, which contention for the cores does "
        "not inflate as it inflates wall time ('-': a cell measured before this column existed).",
        "",
        "| backend | workers | trials/s | storage work per trial | overhead per trial (wall) | share of a hopper "
        "trial | extra CPU per trial | share of a hopper trial | max PG connections | finished / target | "
        "RUNNING at end | killed trial retried | units once |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for c in cells:
        extra = c["cpu_s_per_trial"] - c["alone_cpu_s_per_trial"] if "cpu_s_per_trial" in c else None
        cpu = "- | -" if extra is None else f"{extra:.2f} s | {100 * extra / hopper:.2f}%"
        lines.append(
            f"| {backend_label(c)} | {c['workers']} | {c['trials_per_s']:.2f} | {c['work_per_trial']:.0f} | "
            f"{c['overhead_s_per_trial']:.2f} s | {100 * c['overhead_s_per_trial'] / hopper:.2f}% | {cpu} | "
            f"{c['max_pg_connections'] if c['max_pg_connections'] is not None else '-'} | "
            f"{c['finished']} / {c['target']} | {c['running']} | {'yes' if c['retried'] else 'no'} | "
            f"{'yes' if c['units_once'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[8, 32, 64])
    p.add_argument("--backends", nargs="+", default=["postgres", "proxy", "redis"])
    p.add_argument(
        "--results",
        default=str(RESULTS),
        help="the kept measurements: this run's cells replace the same (backend, workers) cells there, and the "
        f"section shows them all (default {RESULTS.relative_to(ROOT)}; '-': this run only)",
    )
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="the file whose section is written ('-': none)")
    p.add_argument("--machine", default=f"the {os.cpu_count()}-core {os.uname().machine} machine")
    p.add_argument(
        "--heartbeat-interval",
        type=int,
        default=FAST_HEARTBEAT,
        help=f"seconds between heartbeats (grace period 4x; default {FAST_HEARTBEAT}; the search's own default is 10)",
    )
    p.add_argument("--render", action="store_true", help="run nothing: write the section from the kept cells")
    args = p.parse_args()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.render:
            args.workers = []
        alone = baseline_cpu_per_trial(Path(tmp), args.heartbeat_interval) if args.workers else 0.0
        for workers in args.workers:
            for backend in args.backends:
                cell = one_cell(backend, workers, Path(tmp), args.heartbeat_interval)
                cell.update(alone_cpu_s_per_trial=alone, machine=args.machine)
                print(json.dumps(cell), flush=True)
                cells.append(cell)
    if args.results != "-":
        cells = merge(Path(args.results), cells)
    body = render(cells, args.machine)
    print(body)
    if args.out != "-":
        write_section(Path(args.out), "coordination", "Coordination under load (8 / 32 / 64 workers)", body)


if __name__ == "__main__":
    main()
