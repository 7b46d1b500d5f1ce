#!/bin/bash
# Sixteen agents of one sweep as a Slurm job array, one GPU each. Create the sweep once first:
#   unitb sweep create sweep.yaml --name pose-lr --storage "$SWEEP_DB" --logdir s3://bucket/sweeps
# then: SWEEP_DB=postgresql://user@db-host/sweeps sbatch examples/sweeps/slurm_agents.sh
#SBATCH --job-name=pose-lr-agents
#SBATCH --array=0-15
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
set -euo pipefail
source .venv/bin/activate
# Each job is one agent: it runs trials until the sweep is complete (or --count of them). A job
# that is preempted or loses its node is noticed by the others (the heartbeat), and its trial
# runs again elsewhere.
unitb sweep agent pose-lr --storage "$SWEEP_DB" --logdir s3://bucket/sweeps --count 4
