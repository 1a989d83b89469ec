"""Optuna search over V-MPO hyperparameters: ``python -m vmpo_tune.search --study hopper``.

Modules, bottom to top: ``catalog`` / ``pruning`` (samplers and pruners by name),
``spec`` (study files), ``space`` (sampling), ``liveness`` (heartbeats, retries),
``study`` (creating, the budget), ``runner`` (one trial), ``objective`` /
``confirmation`` (what a trial runs), ``factories``, ``worker``, ``progress``,
``launch``, ``stage`` (the confirmation stage), ``cli``.
"""
