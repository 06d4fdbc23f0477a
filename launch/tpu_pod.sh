#!/usr/bin/env bash
# Run one config on every host of a Cloud TPU pod slice. Each host gets this checkout installed (".[tpu]"), joins
# jax.distributed (the coordinator is found by JAX on TPU VMs), scores its share of the items (split by
# chunk) on its local chips, and process 0 merges and writes the tables. The output folder and the
# checkpoint must be visible to every host (a mounted bucket or NFS).
#   launch/tpu_pod.sh [--dry_run] TPU_NAME ZONE CONFIG[:ARG] CHECKPOINT SHARED_OUTPUT_DIR [extra --config flags]
#   --dry_run prints every command instead of running it.
set -euo pipefail
run=()
if [ "${1:-}" = "--dry_run" ]; then
  run=(echo)
  shift
fi
if [ $# -lt 5 ]; then
  echo "usage: $0 [--dry_run] TPU_NAME ZONE CONFIG[:ARG] CHECKPOINT SHARED_OUTPUT_DIR [extra --config flags]" >&2
  exit 2
fi
name=$1 zone=$2 config=$3 checkpoint=$4 out=$5
shift 5
ssh=(gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command)
# Install this checkout (git archive of HEAD) on every worker, then run the job on all of them.
tarball=${TMPDIR:-/tmp}/jaxunc-$$.tar.gz
"${run[@]}" git archive --format=tar.gz -o "$tarball" HEAD
"${run[@]}" gcloud compute tpus tpu-vm scp "$tarball" "$name":jaxunc.tar.gz --zone "$zone" --worker=all
install="mkdir -p jaxunc && tar xzf jaxunc.tar.gz -C jaxunc && cd jaxunc && python3 -m venv .venv \
&& . .venv/bin/activate && pip install -q -e '.[tpu]'"
job="cd jaxunc && . .venv/bin/activate && python -m jaxunc.main --config=$config \
--config.model.checkpoint=$checkpoint --config.output_dir=$out --config.engine.distributed=True $*"
"${run[@]}" "${ssh[@]}" "$install"
"${run[@]}" "${ssh[@]}" "$job"
