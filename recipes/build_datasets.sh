#!/usr/bin/env bash
# Build aigi's development datasets (raw bytes and normalised protocols) from ../shared/data,
# and copy each dataset card + build report to results/datasets/ (the datasets go to data/, git-ignored).
#   bash recipes/build_datasets.sh            # external (stratified split) + external2 (whole sources per split)
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
build() {  # name source split-by protocol...
  local name=$1 source=$2 split_by=$3; shift 3
  for protocol in "$@"; do
    local out=data/${name}_${protocol}
    "$PYTHON" datasets_scripts/build_detection_dataset.py "$source" "$out" --overwrite --protocol "$protocol" \
      --split-test 0.2 --split-val 0.1 --split-by "$split_by" --seed 0 --pretty-name "aigi ${name} (${protocol})"
    mkdir -p results/datasets/${name}_${protocol}
    cp "$out/README.md" "$out/build_report.json" results/datasets/${name}_${protocol}/
  done
}
build external "$SHARED/external" stratified raw normalized
# external2's GAN fakes are 128-192 px next to 256 px photos: normalized pads them, normalized_128 does not.
build external2 "$SHARED/external2" source raw normalized normalized_128
if [ -f data/local_generators/images/manifest.csv ]; then
  build local_generators data/local_generators/images stratified raw normalized
fi
