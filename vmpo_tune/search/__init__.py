"""Optuna search over V-MPO hyperparameters: ``python -m vmpo_tune.search --study hopper``.

Modules, bottom to top: ``yamlfile`` (reading hand-written YAML safely), ``catalog`` / ``pruning``
(samplers and pruners by name), ``racing``, ``studyfiles`` (finding a study by name), ``space`` (the
search space: parameters, the walk over the active ones, sampling), ``spec`` (study files), ``enqueue``
(``--enqueue`` files), ``liveness`` (heartbeats, retries),
``study`` (creating, the budget), ``runner`` (one trial), ``objective`` /
``confirmation`` (what a trial runs), ``factories``, ``worker``, ``progress``,
``launch``, ``stage`` (the confirmation stage), ``cli``.
"""
