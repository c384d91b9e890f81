#!/usr/bin/env bash
# The cross-source benchmark behind results/cross_source/: build the source-labelled pool from every manifest under
# ../shared/data, then `aigi benchmark --config recipes/cross_source.yaml` (resumable; runs/ holds the trainings).
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
[ -f data/pool/manifest.csv ] || "$PYTHON" datasets_scripts/build_training_pool.py "$SHARED" data/pool --folds 5 --seed 0
mkdir -p results/datasets/pool && cp data/pool/README.md data/pool/build_report.json results/datasets/pool/
HF_HUB_OFFLINE=1 "$PYTHON" -m aigi benchmark --config recipes/cross_source.yaml "$@"
