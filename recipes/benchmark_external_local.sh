#!/usr/bin/env bash
# The benchmark behind results/benchmark/: data preparation, then `aigi benchmark` with
# recipes/benchmark_external_local.yaml (resumable: rerun after an interruption). CPU only, 2 cores.
# Usage: bash recipes/benchmark_external_local.sh [RUNS_DIR]     (SHARED=../shared/data, HELD_OUT=conv_vae)
set -euo pipefail
runs=${1:-runs}
shared=${SHARED:-../shared/data}
held_out=${HELD_OUT:-conv_vae}
python="${PYTHON:-python}"
aigi="${AIGI:-aigi}"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
data="$runs/benchmark_data"
mkdir -p "$data"

PYTHON="$python" bash recipes/prepare_external_local.sh "$runs" "$shared"
# Training: external train + local train, without the held-out generator. Selection of the default detector: the
# validation splits, also without it.
"$python" datasets_scripts/merge_sources.py "$data/train.csv" "$runs/external_split/train" \
    "$runs/local_generators_split/train" --exclude-generators "$held_out"
"$python" datasets_scripts/merge_sources.py "$data/selection.csv" "$runs/external_split/val" \
    "$runs/local_generators_split/val" --exclude-generators "$held_out"

start=$SECONDS
$aigi benchmark --config recipes/benchmark_external_local.yaml
echo "wall time of the benchmark: $((SECONDS - start)) s"
