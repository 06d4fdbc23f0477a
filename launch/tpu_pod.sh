#!/usr/bin/env bash
# Run one config on every host of a Cloud TPU pod slice. Each host joins jax.distributed, scores
# its share of the items (split by chunk) on its local chips, and process 0 merges and writes the
# tables; the output folder must be shared by all hosts (e.g. a mounted bucket or NFS).
#   launch/tpu_pod.sh TPU_NAME ZONE configs/gemma2.py:9b /mnt/ckpt/gemma-2-9b /mnt/shared/results/gemma2-9b
set -euo pipefail
if [ $# -lt 5 ]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG[:ARG] CHECKPOINT SHARED_OUTPUT_DIR [extra --config flags]" >&2
  exit 2
fi
name=$1 zone=$2 config=$3 checkpoint=$4 out=$5
shift 5
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command \
  "cd jaxunc && . .venv/bin/activate && python -m jaxunc.main --config=$config \
   --config.model.checkpoint=$checkpoint --config.output_dir=$out --config.engine.distributed=True $*"
