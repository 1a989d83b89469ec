"""Optuna search over V-MPO hyperparameters: ``python -m vmpo_tune.search --study hopper``."""

from .cli import main
from .objective import Objective
from .spec import StudySpec, load_study

__all__ = ["main", "Objective", "StudySpec", "load_study"]
