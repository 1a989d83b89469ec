"""vmpo-tune: V-MPO for Gymnasium MuJoCo tasks, tuned with Optuna."""

__version__ = "0.1.0"
