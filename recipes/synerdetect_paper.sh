#!/usr/bin/env bash
# SynerDetect, paper configuration, on two GPUs: CLIP ViT-L/14 (openai/clip-vit-large-patch14) for E_v, E_d and the
# frozen text encoder; the frozen UNet + VAE of stabilityai/stable-diffusion-2-1-base (epsilon prediction; the 768-px
# v-prediction stable-diffusion-2-1 is refused); 100-step DDIM inversion; lambda 0.4, alpha 0.5; 6 epochs at the paper's
# batch of 64 (2 x 32). Every other choice is a SynerDetectConfig default (see model_cards/synerdetect.md).
# Not run yet: the session that wrote it had no GPU, so memory and step time are unmeasured.
# Differences from the paper: the shared loop's Adam (the paper: SGD, momentum 0.9) at the paper's learning rate 1e-4;
# 256-px crops (the paper gives no input size; SD's 512 would make each of the 100 inversion steps 4x dearer).
# Usage: bash recipes/synerdetect_paper.sh TRAIN_DATA [RUN_DIR]
#   TRAIN_DATA: real/ + fake/<generator>/, 0_real/1_fake, a manifest or a saved HF dataset; e.g. the ProGAN training
#   set of the AIGCDetectBenchmark protocol (256-px images) or GenImage's SD v1.4 split.
# Environment: EPOCHS (6), INVERSION_CACHE_MAX_AGE (0: each crop is inverted once per run, under the prompts of the
# step that first saw it; N > 0 re-inverts entries older than N steps, following the prompts as they train).
set -euo pipefail
data=${1:?path to the training data (real and fake images)}
run=${2:-runs/synerdetect_paper}
epochs=${EPOCHS:-6}
export HF_HUB_DISABLE_TELEMETRY=1

images=$(python -c "import sys; from aigi.data.layouts import load_detection_records; \
print(len(load_detection_records(sys.argv[1])))" "$data")
steps=$(( epochs * images / 64 ))
echo "$images training images: $steps optimizer steps of 64 images for $epochs epochs"

# --patch_size 256 with --augment_preset none keeps the crops of 256-px images identical across epochs, so the
# inversion cache serves every epoch after the first (a larger image is cropped at random and is a miss each time).
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
    -m aigi.train --task synerdetect --train_data "$data" --output_dir "$run" \
    --clip_model openai/clip-vit-large-patch14 --diffusion_model stabilityai/stable-diffusion-2-1-base \
    --image_size 256 --patch_size 256 --augment_preset none --inversion_steps 100 \
    --inversion_cache "$run/inversion_cache" --inversion_cache_max_age "${INVERSION_CACHE_MAX_AGE:-0}" \
    --per_device_batch_size 32 --max_steps "$steps" --learning_rate 1e-4 --weight_decay 0 --mixed_precision bf16 \
    --checkpointing_steps 1000 --logging_steps 10 --num_workers 8 --seed 0
