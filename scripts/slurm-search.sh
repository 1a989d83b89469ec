#!/usr/bin/env bash
# A vmpo-tune search as a Slurm job array: each array task is one machine's worth of workers on the same
# study. Tested against a real single-node Slurm 22.05 from Debian's packages (bash scripts/slurm-local;
# tests/test_slurm.py: an array sharing one exact budget, a cancelled task's trial finished by the next
# submission); not yet on a multi-node cluster.
#
#   sbatch --array=0-7 scripts/slurm-search.sh hopper 400        # 8 nodes, 400 trials in all
#
# Before submitting: the database (or the proxy: python -m vmpo_tune.proxy on one host) is running, and
# VMPO_TUNE_STORAGE is exported in the submitting shell (sbatch passes the environment on), e.g.
#   export VMPO_TUNE_STORAGE=grpc://proxy-host:13000      # or postgresql://tuner:...@db-host/vmpo
# ARTIFACTS must be a folder every node mounts (exact resume of a trial retried on another node).
#SBATCH --job-name=vmpo-search
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --time=12:00:00
#SBATCH --output=vmpo-search-%A_%a.out
set -euo pipefail
STUDY=${1:?study name}
TRIALS=${2:?target number of trials for the whole study}
ARTIFACTS=${ARTIFACTS:-$HOME/vmpo-artifacts}
: "${VMPO_TUNE_STORAGE:?export the storage URL (grpc://... or postgresql://...) before sbatch}"
export OMP_NUM_THREADS=1
# --trials is the study's global target: every array task shares it, and a task that starts late simply
# runs what is left. Slurm's SIGTERM at the time limit is a clean stop: running trials are queued again and
# resume exactly in the next submission.
exec python -m vmpo_tune.search --study "$STUDY" --trials "$TRIALS" --workers "${SLURM_CPUS_PER_TASK:-16}" \
  --artifact-dir "$ARTIFACTS"
