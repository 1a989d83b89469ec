"""The samplers and pruners a study can name, and the package each optional one needs."""

from __future__ import annotations

import optuna

from .pruning import SeedMedianPruner

SAMPLERS: dict[str, type] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
}
PRUNERS: dict[str, type] = {
    "median": optuna.pruners.MedianPruner,
    "seedmedian": SeedMedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "halving": optuna.pruners.SuccessiveHalvingPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "none": optuna.pruners.NopPruner,
}
NEEDS = {"cmaes": "cmaes", "gp": "scipy", "wilcoxon": "scipy", "qmc": "scipy"}
