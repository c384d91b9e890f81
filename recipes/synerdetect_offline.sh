#!/usr/bin/env bash
# SynerDetect offline configuration on the cross-source benchmark (2 CPU cores, no model hub): for each of the 5 folds
# of recipes/cross_source.yaml, a small random CLIPModel folder and a 64-px pixel-space UNet2DConditionModel trained on
# the real photos of that fold's training sources (recipes/synerdetect_offline_components.py, diffusers layout:
# diffusion/unet + diffusion/scheduler, no vae/), then `aigi benchmark --config recipes/synerdetect_offline.yaml`,
# which trains SynerDetect (`python -m aigi.train --task synerdetect --clip_model .../clip --diffusion_model
# .../diffusion`, the same flags as the paper recipe) on the fold's training sources and scores its held-out sources.
# Wall time and peak memory of each stage: /usr/bin/time -v into runs/synerdetect_offline/time_*.txt.
# Usage: bash recipes/synerdetect_offline.sh [components|benchmark|all]   (default all; both stages are resumable)
# Environment: UNET_STEPS (200), PYTHON (.venv/bin/python).
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
stage=${1:-all}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 HF_HUB_DISABLE_TELEMETRY=1
root=runs/synerdetect_offline
mkdir -p "$root"

if [ "$stage" = components ] || [ "$stage" = all ]; then
    # The fold manifests of the benchmark (written once under runs/cross_source/folds, reused by every detector).
    "$PYTHON" -c "from aigi.evaluation.cross_source import write_fold_manifests as w; \
w('data/pool/manifest.csv', 'runs/cross_source/folds', 5, 0)"
    for fold in 0 1 2 3 4; do
        /usr/bin/time -v -o "$root/time_components_fold$fold.txt" \
            "$PYTHON" recipes/synerdetect_offline_components.py \
            --train_data "runs/cross_source/folds/fold_$fold/train.csv" --output "$root/components/fold$fold" \
            --steps "${UNET_STEPS:-200}" --threads 1 --seed 0
    done
fi
if [ "$stage" = benchmark ] || [ "$stage" = all ]; then
    /usr/bin/time -v -o "$root/time_benchmark.txt" \
        "$PYTHON" -m aigi benchmark --config recipes/synerdetect_offline.yaml
fi
