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

# Splits 0.7/0.1/0.2 stratified by generator, seed 0 (the local set's real crops follow their photo's split).
[ -f data/local_generators/images/manifest.csv ] || \
    "$python" datasets_scripts/synthesize_generators.py data/local_generators/images
for name in external external2; do
    [ -d "$runs/${name}_split" ] || "$python" datasets_scripts/split_external.py "$shared/$name" "$runs/${name}_split"
done
[ -d "$runs/local_generators_split" ] || "$python" datasets_scripts/split_external.py data/local_generators/images \
    "$runs/local_generators_split" --reals-follow "$runs/external_split/split.json"
# Training: external train + local train, without the held-out generator. Selection of the default detector: the
# validation splits, also without it.
"$python" datasets_scripts/merge_sources.py "$data/train.csv" "$runs/external_split/train" \
    "$runs/local_generators_split/train" --exclude-generators "$held_out"
"$python" datasets_scripts/merge_sources.py "$data/selection.csv" "$runs/external_split/val" \
    "$runs/local_generators_split/val" --exclude-generators "$held_out"

start=$SECONDS
$aigi benchmark --config recipes/benchmark_external_local.yaml
echo "wall time of the benchmark: $((SECONDS - start)) s"
