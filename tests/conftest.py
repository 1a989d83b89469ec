"""Shared fixtures: one torch thread, and a tiny deterministic env for rollout semantics."""

from __future__ import annotations

import contextlib
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

torch.set_num_threads(1)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class ChainEnv(gym.Env):
    """obs = [step count, 1]; reward = step count after the step; terminates at ``terminate_at``.

    A no-op autoreset step would show up as a reward of 0 or a count that does not go up
    by one, so the tests can tell every stored transition apart.
    """

    metadata = {"render_modes": []}

    def __init__(self, terminate_at: int | None = None) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.terminate_at = terminate_at
        self.count = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return np.array([0.0, 1.0]), {}

    def step(self, action):
        self.count += 1
        terminated = self.terminate_at is not None and self.count == self.terminate_at
        return np.array([float(self.count), 1.0]), float(self.count), terminated, False, {}


gym.register("VmpoTest/ChainTruncate-v0", entry_point=ChainEnv, max_episode_steps=5)
gym.register("VmpoTest/ChainTerminate-v0", entry_point=ChainEnv, kwargs={"terminate_at": 4}, max_episode_steps=100)
gym.register("VmpoTest/Discrete-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv", max_episode_steps=50)


@pytest.fixture
def tiny_agent_kwargs():
    return dict(policy_layer_sizes=(32, 32), value_layer_sizes=(32, 32), seed=0)


# ---------------------------------------------------------------------------- database servers

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MYSQL_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"


def _server_or_skip(name: str, admin_url: str, how_to_start: str):
    """An admin engine for a loopback server; unreachable fails in CI and skips elsewhere."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        message = f"{name} is not reachable at {admin_url} ({type(exc).__name__}); start it: {how_to_start}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return engine


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "vmpo_test"):
    """A new PostgreSQL database on the loopback server (its URL), dropped afterwards."""
    import uuid

    import sqlalchemy

    engine = _server_or_skip("PostgreSQL", PG_ADMIN, "bash scripts/services")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        engine.dispose()


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database on the loopback server, dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def mysql_admin():
    engine = _server_or_skip("MariaDB", MYSQL_ADMIN, "bash scripts/services")
    yield engine
    engine.dispose()


@pytest.fixture
def mysql_url(mysql_admin):
    """A fresh MariaDB database, and a user ``vmpo_<id>`` with password ``pw-<id>`` on it."""
    import uuid

    import sqlalchemy

    tag = uuid.uuid4().hex[:10]
    name, user, password = f"vmpo_test_{tag}", f"vmpo_{tag}", f"pw-{tag}"
    with mysql_admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        for host in ("localhost", "127.0.0.1"):
            conn.execute(sqlalchemy.text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'"))
            conn.execute(sqlalchemy.text(f"GRANT ALL ON {name}.* TO '{user}'@'{host}'"))
    yield {
        "url": f"mysql+pymysql://{user}:{password}@127.0.0.1:3306/{name}",
        "user": user,
        "password": password,
        "database": name,
    }
    with mysql_admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}"))
        for host in ("localhost", "127.0.0.1"):
            conn.execute(sqlalchemy.text(f"DROP USER IF EXISTS '{user}'@'{host}'"))


@pytest.fixture
def redis_url():
    """A Redis database index of its own on the loopback server, emptied before and after (1-14: index 15 is
    benchmarks/coordination.py's)."""
    import random

    import redis

    url = f"redis://127.0.0.1:6379/{random.randint(1, 14)}"
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {url} ({type(exc).__name__}); start it: bash scripts/services"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
