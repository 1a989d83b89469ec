"""The files of a training run's output folder, by name (a ground-floor module: reading a stored study needs
the names, not the trainer)."""

STATE_FILE = "resume.pt"
"""The trainer's resume state (:meth:`~vmpo_tune.trainer.VMPOTrainer.save_state`)."""
CURVE_FILE = "evaluations.csv"
"""The learning curve: one row per evaluation."""
BEST_CHECKPOINT = "best.pt"
"""The best agent so far (:meth:`~vmpo_tune.agent.VMPOAgent.load` reads it)."""
