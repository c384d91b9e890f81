#!/usr/bin/env bash
# GenSign (offline configuration) on the external development set, on CPU: the runs behind results/gensign/.
# Usage: bash recipes/gensign_external.sh PATH/TO/external [RUNS_DIR]
set -euo pipefail
external=${1:?path to the external data folder (real/, fake/<generator>/, manifest.csv)}
runs=${2:-runs}
export HF_HUB_OFFLINE=1
# One intra-op thread: on the shared 2-core machine a second thread made a DAIR step 5x slower (measured).
export OMP_NUM_THREADS=1
aigi="${AIGI:-aigi}"
train="$runs/external_split/train"

timed() {  # timed STAGE command...: runs the command, then prints its wall time
    local stage=$1 start=$SECONDS; shift
    "$@"
    echo "wall time of $stage: $((SECONDS - start)) s"
}

# 1. Held-aside split (0.7/0.1/0.2, stratified by label and generator, seed 0). The test split is never trained on.
[ -d "$runs/external_split" ] || python datasets_scripts/split_external.py "$external" "$runs/external_split"

# 2. Stage I, DAIR (default aigi.dair.DAIRConfig, 2.44 M parameters) on the REAL photos of the train split (fakes
#    are dropped): 96-px crops, a newly sampled decoder architecture every step, MSE + 0.25 perceptual (offline: the
#    multi-scale SSIM + gradient fallback, recorded as perceptual_kind in final/config.json).
timed dair $aigi train --task dair --train_data "$train" --output_dir "$runs/gensign_dair" \
    --patch_size 96 --per_device_batch_size 8 --max_steps 600 --learning_rate 1e-3 --weight_decay 0 \
    --logging_steps 10 --checkpointing_steps 100 --num_workers 0 --seed 0

# 3. Stage II, the signature extractor (width 32, 4 residual blocks; the paper's 64 x 8 is 6x the compute) regressing
#    2 * (image - DAIR(image)) on the same real photos, DAIR frozen, a random architecture every step.
timed extractor $aigi train --task gensign-extractor --dair "$runs/gensign_dair/final" --train_data "$train" \
    --output_dir "$runs/gensign_extractor" --signature_extractor_width 32 --signature_extractor_blocks 4 \
    --patch_size 96 --per_device_batch_size 8 --max_steps 400 --learning_rate 1e-3 --weight_decay 0 \
    --logging_steps 10 --checkpointing_steps 100 --num_workers 0 --seed 0

# 4. Stage III, the dual-stream detector from scratch on the whole train split (reals + the SD/LDM fakes): RGB stream
#    RegNetX-200MF, signature stream TinyNet-D (EfficientNet-B0's structure, scaled down), the trained extractor
#    frozen; codec/resize augmentation on both classes (as the RescaleCL runs), 128-px crops and a 128-px centre crop
#    at inference (GenSign trains on crops of its inference size). Same recipe for the full model and the two
#    ablations.
detector() {  # detector RUN_NAME [extra flags]
    local name=$1; shift
    timed "$name" $aigi train --task classify --family gensign --backbone regnetx_002 --signature_backbone tinynet_d \
        --train_data "$train" --output_dir "$runs/$name" --image_size 128 --patch_size 128 \
        --per_device_batch_size 16 --max_steps 250 --learning_rate 3e-4 --weight_decay 0 \
        --logging_steps 10 --checkpointing_steps 50 --num_workers 0 --seed 0 "$@"
}
# Full: DAIR pseudo-fakes (any image, p 0.2, labelled fake) on top of the real fakes.
detector gensign_detector --extractor "$runs/gensign_extractor/final" \
    --self_augmentation_dair "$runs/gensign_dair/final" --p_aug 0.2
# Ablation: RGB stream only (no extractor, no signature backbone; the head sees the RGB features alone).
detector gensign_detector_no_signature --use_signature_stream false \
    --self_augmentation_dair "$runs/gensign_dair/final" --p_aug 0.2
# Ablation: no self-augmentation.
detector gensign_detector_no_self_aug --extractor "$runs/gensign_extractor/final" \
    --self_augmentation_dair "$runs/gensign_dair/final" --p_aug 0

# 5. Evaluation on the held-aside test split, normalised protocol (centre crop 256 + JPEG q95 on both classes).
for row in full:gensign_detector no_signature:gensign_detector_no_signature no_self_aug:gensign_detector_no_self_aug; do
    timed "evaluate ${row#*:}" $aigi evaluate --model "$runs/${row#*:}/final" --data "$runs/external_split/test" \
        --protocol normalized --output "results/gensign/${row%%:*}_normalized"
done
