#!/usr/bin/env bash
# GenSign (offline configuration) on the cross-source benchmark (2 CPU cores): for each of the 5 folds of
# recipes/cross_source.yaml, its stage I (DAIR) and stage II (signature extractor) trained on the real photos of that
# fold's training sources only, so no held-out photo shapes them; then `aigi benchmark --config
# recipes/gensign_cross_source.yaml`, which trains the dual-stream detector on the fold's training sources (RGB stream
# EfficientNet-Lite0 from ImageNet and from scratch) and scores its held-out sources.
# Results: results/cross_source_gensign/.
# Usage: bash recipes/gensign_cross_source.sh [components|benchmark|all]   (default all; both stages are resumable)
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
stage=${1:-all}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
root=runs/gensign_cross_source
mkdir -p "$root"

components() {  # components FOLD: DAIR, then the extractor, on the fold's training photos; skipped when done
    local fold=$1 out="$root/components/fold$1" train="runs/cross_source/folds/fold_$1/train.csv"
    [ -f "$out/dair/final/config.json" ] || "$PYTHON" -m aigi train --task dair --train_data "$train" \
        --output_dir "$out/dair" --patch_size 96 --per_device_batch_size 8 --max_steps 400 --learning_rate 1e-3 \
        --weight_decay 0 --logging_steps 20 --checkpointing_steps 100 --num_workers 0 --seed 0
    [ -f "$out/extractor/final/config.json" ] || "$PYTHON" -m aigi train --task gensign-extractor \
        --dair "$out/dair/final" --train_data "$train" --output_dir "$out/extractor" \
        --signature_extractor_width 32 --signature_extractor_blocks 4 --patch_size 96 --per_device_batch_size 8 \
        --max_steps 200 --learning_rate 1e-3 --weight_decay 0 --logging_steps 20 --checkpointing_steps 100 \
        --num_workers 0 --seed 0
}

if [ "$stage" = components ] || [ "$stage" = all ]; then
    "$PYTHON" -c "from aigi.evaluation.cross_source import write_fold_manifests as w; \
w('data/pool/manifest.csv', 'runs/cross_source/folds', 5, 0)"
    # Two folds side by side, one thread each.
    start=$SECONDS
    (components 0; components 2; components 4) > "$root/components_a.log" 2>&1 &
    (components 1; components 3) > "$root/components_b.log" 2>&1 &
    wait
    echo "components: $((SECONDS - start)) s"
fi
if [ "$stage" = benchmark ] || [ "$stage" = all ]; then
    start=$SECONDS
    "$PYTHON" -m aigi benchmark --config recipes/gensign_cross_source.yaml
    echo "benchmark: $((SECONDS - start)) s"
fi
