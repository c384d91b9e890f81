#!/usr/bin/env bash
# Splits shared by the recipes on the external sets and the local generator set (each step skipped when done):
# the local set (6 generators, 64 px, about 30 min to synthesise), then 0.7/0.1/0.2 splits stratified by generator,
# seed 0; the local real crops were cut from external's photos, so each follows its photo's split.
# Usage: bash recipes/prepare_external_local.sh RUNS_DIR SHARED_DATA_DIR   (PYTHON: the interpreter)
set -euo pipefail
runs=$1
shared=$2
python="${PYTHON:-python}"
[ -f data/local_generators/images/manifest.csv ] || \
    "$python" datasets_scripts/synthesize_generators.py data/local_generators/images
for name in external external2; do
    [ -d "$runs/${name}_split" ] || "$python" datasets_scripts/split_external.py "$shared/$name" "$runs/${name}_split"
done
[ -d "$runs/local_generators_split" ] || "$python" datasets_scripts/split_external.py data/local_generators/images \
    "$runs/local_generators_split" --reals-follow "$runs/external_split/split.json"
