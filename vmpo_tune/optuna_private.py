"""The pieces of Optuna's private API vmpo-tune uses, in one place.

Checked against Optuna 5.0.0 (the version ``pyproject.toml`` pins); ``tests/test_optuna_private.py``
fails loudly if a release renames or changes them.

* ``Study._storage``: the study's storage object. Optuna's public API reads and writes trials
  only through ``study`` / ``trial`` objects that *this* process created or asked for; a worker
  must also read and write trials it did not ask for (a stale one it fails and requeues, the
  fresh state of its own trial that another worker may have finished), and write the heartbeat
  as a system attribute, which ``optuna.Trial`` has no public setter for.
* ``Trial._trial_id``: the storage's id of a live trial, which those storage calls take.
* ``optuna.storages._base.DEFAULT_STUDY_NAME_PREFIX``: the prefix of an unnamed study's name, which
  :class:`~vmpo_tune.storage.ResilientStorage` gives before the first attempt (so that a retry
  creates no second study).
* ``optuna.storages._cached_storage._CachedStorage``: the cache of finished trials that Optuna puts in front
  of every ``RDBStorage`` it opens from a URL (``optuna.storages.get_storage``), which a storage object of
  ours would otherwise go without: each read of a study then loads only its unfinished and new trials,
  not all of them (a finished trial never changes). The proxy's server and every worker read whole studies
  often (the sampler, the pruner, the budget count, the progress display).
* ``RDBStorage._create_new_trial`` / ``_get_prepared_new_trial``, ``optuna.storages._rdb.models`` and
  ``_create_scoped_session``: :class:`SingleAttemptRDB` creates a trial in one attempt, where Optuna's own
  loop would store a duplicate after a connection lost during the commit.
* ``optuna.storages._grpc``: the gRPC proxy's servicer, so that ``python -m vmpo_tune.proxy`` can
  serve its budget locks on the same server (``run_grpc_proxy_server`` builds a server that
  cannot take another service).
"""

from __future__ import annotations

import copy

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._base import DEFAULT_STUDY_NAME_PREFIX  # noqa: F401  (re-exported: storage.py uses it)
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial

CHECKED_WITH = ("5.0.0",)


def storage_of(study: optuna.Study) -> BaseStorage:
    return study._storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    return trial._trial_id


def fresh(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
    """The trial as the storage holds it now (another worker may have changed it)."""
    return storage_of(study).get_trial(trial_id(trial))


def set_system_attr(study: optuna.Study, trial_id_: int, key: str, value) -> None:
    """A trial's system attribute (``optuna.Trial`` has no public setter for them)."""
    storage_of(study).set_trial_system_attr(trial_id_, key, value)


def grpc_proxy_server(storage: BaseStorage, threads: int):
    """A ``grpc.Server`` with Optuna's storage service for ``storage`` (not started, no port yet)."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    # no SO_REUSEPORT (gRPC's default): a second proxy on a busy port must fail, not share the port
    server = grpc.server(ThreadPoolExecutor(max_workers=threads), options=[("grpc.so_reuseport", 0)])
    api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)
    return server


class CachedRDB(_CachedStorage):
    """An ``RDBStorage`` behind Optuna's cache of finished trials, as ``optuna.storages.get_storage`` would give it,
    with the backend's ``remove_session`` (which the cache does not pass on) and its ``engine``."""

    def remove_session(self) -> None:
        self._backend.remove_session()

    @property
    def engine(self):
        return self._backend.engine


class SingleAttemptRDB(RDBStorage):
    """``RDBStorage`` whose trial creation is a single attempt.

    Optuna's ``_create_new_trial`` tries again, up to five times, after any ``StorageInternalError``, which a
    connection lost during the commit raises too. A trial that was stored before the connection dropped then gets
    a duplicate: the caller runs the second, and the first stays RUNNING with no worker and no heartbeat, holding a
    place in the budget until it counts as stale (seen on MariaDB with the study's connections killed every 0.3 s:
    the search waited for it 10 minutes). Here the failure is raised, and
    :class:`~vmpo_tune.storage.ResilientStorage` tries again only after looking whether the attempt committed."""

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        with _create_scoped_session(self.scoped_session) as session:
            # the study row locked, as Optuna does: trial numbers are counted, not drawn from a sequence
            rdb_models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
            trial = self._get_prepared_new_trial(study_id, template_trial, session)
            if template_trial is None:
                return FrozenTrial(
                    number=trial.number,
                    state=trial.state,
                    value=None,
                    values=None,
                    datetime_start=trial.datetime_start,
                    datetime_complete=None,
                    params={},
                    distributions={},
                    user_attrs={},
                    system_attrs={},
                    intermediate_values={},
                    trial_id=trial.trial_id,
                )
            frozen = copy.deepcopy(template_trial)
            frozen.number, frozen.datetime_start, frozen._trial_id = trial.number, trial.datetime_start, trial.trial_id
            return frozen
