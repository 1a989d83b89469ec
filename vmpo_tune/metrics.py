"""Metric names, declared once and namespaced (``loss/``, ``kl/``, ``vmpo/``, ``eval/``, ...)."""

LOSS_POLICY = "loss/policy"
LOSS_VALUE = "loss/value"
LOSS_TEMPERATURE = "loss/temperature"
LOSS_ALPHA = "loss/alpha"
KL_MEAN = "kl/mean"
KL_STD = "kl/std"
ETA = "vmpo/eta"
ALPHA_MU = "vmpo/alpha_mu"
ALPHA_SIGMA = "vmpo/alpha_sigma"
TOPK = "vmpo/topk"
WEIGHTS_KL = "vmpo/weights_kl"
POLICY_STD = "policy/std"
EXPLAINED_VARIANCE = "value/explained_variance"
EVAL_RETURN = "eval/return_mean"
EVAL_RETURN_STD = "eval/return_std"
EVAL_LENGTH = "eval/length_mean"
TRAIN_EPISODE_RETURN = "train/episode_return"
STEPS_PER_SECOND = "time/steps_per_second"
LR_FACTOR = "optim/lr_factor"

UPDATE_METRICS = (
    LOSS_POLICY,
    LOSS_VALUE,
    LOSS_TEMPERATURE,
    LOSS_ALPHA,
    KL_MEAN,
    KL_STD,
    ETA,
    ALPHA_MU,
    ALPHA_SIGMA,
    TOPK,
    WEIGHTS_KL,
    POLICY_STD,
    EXPLAINED_VARIANCE,
)
