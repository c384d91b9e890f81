#!/usr/bin/env bash
# RescaleCL on the external development set, on CPU: the run behind results/rescalecl/.
# Usage: bash recipes/rescalecl_external.sh PATH/TO/external [RUNS_DIR]
set -euo pipefail
external=${1:?path to the external data folder (real/, fake/<generator>/, manifest.csv)}
runs=${2:-runs}
export HF_HUB_OFFLINE=1
aigi="${AIGI:-aigi}"

# 1. Held-aside split (0.7/0.1/0.2, stratified by label and generator, seed 0). The test split is never trained on.
[ -d "$runs/external_split" ] || python datasets_scripts/split_external.py "$external" "$runs/external_split"

# 2. Rescaling-contrastive pre-training on the REAL photos of the train split only (fakes are dropped).
#    Offline configuration: Xception from scratch, fixed 3x3 high-pass input, 64-px patches, ratios p/q in (1,2) with
#    q <= 4, plus the auxiliary ratio cross-entropy (weight 1); see results/rescalecl/README.md for why.
$aigi train --task rescalecl-pretrain --train_data "$runs/external_split/train" --output_dir "$runs/rescalecl_pretrain" \
    --input_highpass true --patch_size 64 --max_steps 600 --per_device_batch_size 24 --ratios_per_batch 4 \
    --phases_per_ratio 2 --max_ratio_denominator 4 --ratio_classification_weight 1.0 --learning_rate 5e-4 \
    --logging_steps 10 --checkpointing_steps 100 --num_workers 1 --seed 0

# 3. Full fine-tuning of the pre-trained encoder (128-px patches, codec/resize augmentation on both classes) and the
#    same recipe from a random encoder (the paper's "Xception without pre-training" ablation).
finetune() {  # finetune OUTPUT_DIR [extra flags]
    local output=$1; shift
    $aigi train --task classify --train_data "$runs/external_split/train" --output_dir "$output" \
        --patch_size 128 --image_size 256 --max_steps 250 --per_device_batch_size 32 --learning_rate 2e-4 \
        --logging_steps 10 --checkpointing_steps 50 --num_workers 1 --seed 0 "$@"
}
finetune "$runs/rescalecl_finetune" --model "$runs/rescalecl_pretrain/final"
finetune "$runs/rescalecl_scratch" --backbone legacy_xception --input_highpass true

# 4. Evaluation on the held-aside test split, normalised protocol (centre crop 256 + JPEG q95 on both classes).
for name in rescalecl_finetune rescalecl_scratch; do
    $aigi evaluate --model "$runs/$name/final" --data "$runs/external_split/test" --protocol normalized \
        --output "$runs/$name/eval_external_test"
done
