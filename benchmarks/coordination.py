"""The coordination layer under load: many worker processes running tiny real trials, so that storage calls,
heartbeats, stale-trial scans and the budget lock dominate.

    python benchmarks/coordination.py                                   # 8, 32, 64 workers x 3 backends
    python benchmarks/coordination.py --workers 64                      # the 64-worker cells, merged with the kept ones
    python benchmarks/coordination.py --workers 8 --backends postgres --results - --out -   # a smoke test
    python benchmarks/coordination.py --workers 64 --backends proxy --heartbeat-interval 2   # faster liveness
    python benchmarks/coordination.py --startup --workers 8 32 64       # remeasure the kept cells' start-up

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
* coordination CPU per trial: the search's CPU seconds (every process it waited for, and the proxy's; not the
  database server's) minus the trials' own work (each trial records the CPU time its worker's training thread
  spent building and training its seeds, ``compute_cpu_s``: everything but storage calls, the sampler, the
  pruner, heartbeats and artifact uploads), minus the start-up CPU of the N worker processes (N fresh
  interpreters started at once, each importing what a worker imports; each worker pays it once per command,
  however many trials it runs), per finished trial; and that as a share of a ``hopper`` trial. What is left
  is all the tuner does around the trials: asking the sampler, the storage calls on both sides of the proxy,
  heartbeats and stale-trial scans, the budget lock, the pruner, the progress display. Unlike wall time, CPU time is not
  inflated by processes queueing for the cores, except that work which runs as long as the cell does
  (heartbeats, the lock's asks, the progress display's polling) grows with a cell slowed by contention: on a
  crowded machine that part is an upper bound;
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
import contextlib
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
from vmpo_tune.search.liveness import HEARTBEAT_INTERVAL  # noqa: E402
from vmpo_tune.search.spec import load_spec  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/15"
TINY = ("--total-steps", "1024", "--eval-interval", "512", "--eval-episodes", "1")


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


class Backend:
    """One backend's storage for a cell: the URL the commands get, this script's own reader, and for PostgreSQL
    a fresh database (and the proxy in front of it)."""

    def __init__(self, name: str, folder: Path, log: Path) -> None:
        self.name, self.folder, self.log = name, folder, log
        self.pg = PgDatabase() if name in ("postgres", "proxy") else None
        self.proxy: subprocess.Popen | None = None

    def __enter__(self) -> Backend:
        if self.pg is not None:
            self.pg.__enter__()
        if self.name == "redis":
            import redis
            from optuna.storages.journal import JournalRedisBackend, JournalStorage

            redis.Redis.from_url(REDIS).flushdb()
            self.url, self.reader = REDIS, JournalStorage(JournalRedisBackend(REDIS))
            return self
        if self.name == "proxy":
            port = free_port()
            self.proxy = python("vmpo_tune.proxy", "--storage", self.pg.url, "--port", str(port), cwd=self.folder,
                                log=self.log, background=True)  # fmt: skip
            time.sleep(5)
            self.url = f"grpc://127.0.0.1:{port}"
        else:
            self.url = self.pg.url
        # the benchmark's own reader: a connection per read (it may be in the table's maximum)
        self.reader = optuna.storages.RDBStorage(self.pg.url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})
        return self

    def work(self) -> int:
        """Storage work so far: Redis commands, or the database's committed transactions."""
        return redis_commands() if self.name == "redis" else self.pg.commits()

    def cpu(self) -> float:
        """CPU seconds of every child waited for so far, plus the running proxy's."""
        return children_cpu() + process_cpu(self.proxy)

    def __exit__(self, *exc) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait(timeout=30)
        if self.pg is not None:
            self.pg.__exit__(None, None, None)


def search_args(workers: int, trials: int, out: Path, heartbeat: int) -> tuple[str, ...]:
    return ("vmpo_tune.search", "--study", "demo", "--trials", str(trials), "--workers", str(workers), "--out",
            str(out), *TINY, *liveness(heartbeat))  # fmt: skip


def one_cell(backend: str, workers: int, folder: Path, heartbeat: int = HEARTBEAT_INTERVAL) -> dict:
    """One backend at one worker count: the search with a kill, then the confirmation; measurements and invariants."""
    log = folder / f"{backend}-{workers}.log"
    out = folder / f"run-{backend}-{workers}"
    with Backend(backend, folder, log) as b:
        work_before = b.work()
        stop = threading.Event()
        result: dict = {}
        killer = threading.Thread(target=lambda: result.update(kill_one_worker(b.reader, stop)), daemon=True)
        killer.start()
        start, cpu_before = time.perf_counter(), b.cpu()
        search = python(*search_args(workers, 3 * workers, out, heartbeat), "--storage", b.url, "--force",
                        cwd=folder, log=log, background=True)  # fmt: skip
        proxy_before, own = process_cpu(b.proxy), last_cpu(search)
        wall, cpu = time.perf_counter() - start, b.cpu() - cpu_before
        proxy_cpu = process_cpu(b.proxy) - proxy_before
        searched = optuna.load_study(study_name="demo", storage=b.reader).get_trials(deepcopy=False)
        compute = sum(float(t.user_attrs.get(records.COMPUTE_CPU) or 0.0) for t in searched)  # this command's trials
        stop.set()
        killer.join()
        # the killed worker's trial: its command may end first (the others wait for the heartbeat to go stale)
        python(*search_args(2, 3 * workers, out, heartbeat), "--storage", b.url, cwd=folder, log=log)
        work = b.work() - work_before
        trials = optuna.load_study(study_name="demo", storage=b.reader).get_trials(deepcopy=False)
        counts = records.budget_counts(trials)
        inside = sum(float(t.user_attrs.get(records.WALL_TIME) or 0.0) for t in trials)
        confirm = ("vmpo_tune.confirm", "--study", "demo", "--storage", b.url, "--run-dir", str(out), "--top", "2",
                   "--seeds", "4", "--workers", str(min(workers, 8)), *liveness(heartbeat))  # fmt: skip
        python(*confirm, cwd=folder, log=log)
        units = optuna.load_study(study_name=records.confirm_study_name("demo"), storage=b.reader).get_trials()
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
            # where that CPU went: the command's own process (progress display, pool), the proxy, the workers
            "command_cpu_s_per_trial": own / max(counts.finished, 1),
            "proxy_cpu_s_per_trial": proxy_cpu / max(counts.finished, 1),
            "compute_cpu_s_per_trial": compute / max(counts.finished, 1),
            "max_pg_connections": b.pg.max_connections if b.pg is not None else None,
            "killed": result,
            "retried": killed_trials_retried(trials, result.get("pid")),
            "units_once": len(pairs) == len(set(pairs)),
            "target": 3 * workers,
        }


def killed_trials_retried(trials: list, pid: int | None) -> bool:
    """Whether the killed worker's trial was failed as stale and queued again. It is found by the worker's pid, not
    by the number the killer saw running: the worker may have finished that trial and started the next between the
    look and the kill."""
    killed = [
        t
        for t in trials
        if t.state == TrialState.FAIL and (t.user_attrs.get(records.PROVENANCE) or {}).get("pid") == pid
    ]
    return bool(killed) and all(any(u.system_attrs.get(records.RETRY_OF) == k.number for u in trials) for k in killed)


WORKER_IMPORTS = "import vmpo_tune.search.worker, vmpo_tune.search.runner, mujoco, grpc"
"""What a spawned worker process imports before it trains (its loop, torch, Gymnasium, MuJoCo, the gRPC client)."""


def startup_cpu(workers: int) -> float:
    """CPU seconds per process of ``workers`` fresh interpreters started at once, each importing what a worker
    imports: the start-up each of a cell's N worker processes pays once, measured as the pool pays it (N processes
    importing side by side, which costs more per process on a crowded machine than one alone)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    before = children_cpu()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER_IMPORTS], env=env) for _ in range(workers)]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit(f"importing what a worker imports failed: {WORKER_IMPORTS}")
    return (children_cpu() - before) / workers


def cpu_columns(cell: dict) -> tuple[float, float]:
    """(a worker's start-up CPU, coordination CPU per trial) of a cell: its CPU per trial minus its trials' own work
    per trial, minus the start-up of its N workers spread over its trials."""
    outside = cell["cpu_s_per_trial"] - cell["compute_cpu_s_per_trial"]
    return cell["startup_cpu_s"], outside - cell["workers"] * cell["startup_cpu_s"] / cell["finished"]


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process this one has waited for, their own children included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def last_cpu(proc: subprocess.Popen) -> float:
    """Waits for ``proc`` and returns the CPU seconds of that process alone (not its children), as last read from
    /proc every 0.2 s while it ran."""
    seen = 0.0
    while proc.poll() is None:
        with contextlib.suppress(OSError, IndexError, ValueError):  # it may end between the check and the read
            seen = process_cpu(proc)
        time.sleep(0.2)
    return seen


def process_cpu(proc: subprocess.Popen | None) -> float:
    """CPU seconds a running child (the proxy, the search command) has used so far itself, not its children, from
    /proc (0 without one)."""
    if proc is None:
        return 0.0
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def commit() -> str:
    """The code a cell measured (the repository's commit; "+" when the working tree differs from it)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "vmpo_tune"], cwd=ROOT).returncode != 0
    return head.stdout.strip() + ("+" if dirty else "")


def _key(cell: dict) -> tuple:
    return cell["backend"], cell["workers"], cell["heartbeat_s"]


def merge(path: Path, new: list[dict]) -> list[dict]:
    """The kept cells with ``new`` in place of the same (backend, workers) ones, written back; in table order."""
    kept = json.loads(path.read_text()) if path.exists() else []
    fresh = {_key(c) for c in new}
    cells = [c for c in kept if _key(c) not in fresh] + new
    order = {"postgres": 0, "proxy": 1, "redis": 2}
    cells.sort(key=lambda c: (c["workers"], order.get(c["backend"], 9), c["heartbeat_s"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cells, indent=1) + "\n")
    return cells


def backend_label(cell: dict) -> str:
    beat = cell["heartbeat_s"]
    notes = ([] if beat == HEARTBEAT_INTERVAL else [f"heartbeat {beat} s"]) + (
        [f"code {cell['commit']}"] if "commit" in cell else []
    )
    return f"{cell['backend']} ({'; '.join(notes)})" if notes else cell["backend"]


def render(cells: list[dict], machine: str) -> str:
    hopper = float(load_spec("hopper", check_env=False).timing.get("seconds_per_trial", 104))
    lines = [
        f"`python benchmarks/coordination.py` on {' / '.join(sorted({c.get('machine', machine) for c in cells}))} "
        f"({', '.join(sorted({c.get('date', '?') for c in cells}))}): "
        "the `demo` study cut to 1,024 env steps per trial, "
        "3 trials per worker, one worker SIGKILLed mid-trial, then `confirm --top 2 --seeds 4`. Overhead = "
        f"worker-seconds not spent inside a trial's run, per finished trial; its share is of a `hopper` trial "
        f"({hopper:.0f} s). Storage work = PostgreSQL commits (direct and proxy) or Redis commands, per trial. "
        "Coordination CPU = the search's CPU seconds per trial (all its processes, the proxy's included; not the "
        "database server's) minus the trials' own work (the CPU time each trial's training thread spent building "
        "and training its seeds, which the trial records), minus the start-up CPU of the N worker processes (N "
        "fresh interpreters started at once, each importing what a worker imports: torch, Gymnasium, MuJoCo, gRPC; "
        "each worker pays it once per command, not per trial) spread over the trials: all the tuner does around "
        "the trials (sampler, storage calls, heartbeats, budget lock, pruner, progress display). Heartbeat: the "
        f"search's default ({HEARTBEAT_INTERVAL} s) unless the row says otherwise. A cell with a code mark ran at "
        "that commit.",
        "",
        "| backend | workers | trials/s | storage work per trial | overhead per trial (wall) | share of a hopper "
        "trial | start-up CPU per worker | coordination CPU per trial | share of a hopper trial | "
        "max PG connections | finished / target | RUNNING at end | killed trial retried | units once |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for c in cells:
        startup, coordination = cpu_columns(c)
        cpu = f"{startup:.1f} s | {coordination:.2f} s | {100 * coordination / hopper:.2f}%"
        lines.append(
            f"| {backend_label(c)} | {c['workers']} | {c['trials_per_s']:.2f} | {c['work_per_trial']:.0f} | "
            f"{c['overhead_s_per_trial']:.2f} s | {100 * c['overhead_s_per_trial'] / hopper:.2f}% | {cpu} | "
            f"{c['max_pg_connections'] if c['max_pg_connections'] is not None else '-'} | "
            f"{c['finished']} / {c['target']} | {c['running']} | {'yes' if c['retried'] else 'NO'} | "
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
        default=HEARTBEAT_INTERVAL,
        help=f"seconds between heartbeats (grace period 4x; default: the search's own, {HEARTBEAT_INTERVAL})",
    )
    p.add_argument("--render", action="store_true", help="run nothing: write the section from the kept cells")
    p.add_argument(
        "--startup",
        action="store_true",
        help="run no cell: measure the start-up of N workers at once for each --workers N and give it to the kept "
        "cells of that N",
    )
    args = p.parse_args()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in [] if args.render or args.startup else args.workers:
            startup = None
            for backend in args.backends:
                code = commit()  # before the cell: what its commands ran
                cell = one_cell(backend, workers, Path(tmp), args.heartbeat_interval)
                startup = startup_cpu(workers) if startup is None else startup
                cell.update(startup_cpu_s=startup, machine=args.machine, commit=code)
                print(json.dumps(cell), flush=True)
                cells.append(cell)
                if args.results != "-":
                    merge(Path(args.results), [cell])  # kept as soon as measured: a stopped run loses one cell
    if args.startup:
        kept = json.loads(Path(args.results).read_text())
        for workers in args.workers:
            startup = startup_cpu(workers)
            print(f"{workers} workers: {startup:.2f} CPU-s of start-up per worker", flush=True)
            for cell in kept:
                if cell["workers"] == workers and cell["backend"] in args.backends:
                    cell.update(startup_cpu_s=startup)
        cells = merge(Path(args.results), kept)
    elif args.results != "-":
        cells = merge(Path(args.results), [])
    body = render(cells, args.machine)
    print(body)
    if args.out != "-":
        write_section(Path(args.out), "coordination", "Coordination under load (8 / 32 / 64 workers)", body)


if __name__ == "__main__":
    main()
