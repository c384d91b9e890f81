#!/usr/bin/env bash
# FiSeR (offline configuration) on the external set + the local multi-generator set, with one generator left out of
# training: the runs behind results/fiser/. CPU only; about an hour on 2 cores once the local set exists.
# Usage: bash recipes/fiser_external_local.sh [RUNS_DIR]      (HELD_OUT=conv_vae by default; SHARED=../shared/data)
set -euo pipefail
runs=${1:-runs}
shared=${SHARED:-../shared/data}
held_out=${HELD_OUT:-conv_vae}
results=${RESULTS:-results/fiser}
export HF_HUB_OFFLINE=1
# One intra-op thread per job: the two trainings run side by side on the 2 cores.
export OMP_NUM_THREADS=1
aigi="${AIGI:-aigi}"
python="${PYTHON:-python}"
data="$runs/fiser_data"
mkdir -p "$results" "$data"

timed() {  # timed STAGE command...: runs the command, then prints its wall time
    local stage=$1 start=$SECONDS; shift
    "$@"
    echo "wall time of $stage: $((SECONDS - start)) s" | tee -a "$results/wall_times.txt"
}

# 1. Data: the local set and the splits (recipes/prepare_external_local.sh), then the training manifest without the
#    held-out generator.
PYTHON="$python" bash recipes/prepare_external_local.sh "$runs" "$shared"
"$python" datasets_scripts/merge_sources.py "$data/train.csv" "$runs/external_split/train" \
    "$runs/local_generators_split/train" --exclude-generators "$held_out"

# 2. The encoder: ResNet-10-T from scratch, hierarchical contrastive loss (T 0.07, coarse 1 / fine 1), FiSeR's
#    augmentations on both classes after a symmetric JPEG/WebP re-encode (so the format says nothing), random 64-px
#    crops instead of FiSeR's random resized crop (a from-scratch encoder loses the traces under resampling), and the
#    coarse-only ablation (fine weight 0) with everything else identical. Both run at once, one thread each.
encoder() {  # encoder RUN_NAME [extra flags]
    local name=$1; shift
    [ -f "$runs/$name/final/model.safetensors" ] && return
    timed "$name" $aigi train --task fiser --train_data "$data/train.csv" --output_dir "$runs/$name" \
        --backbone resnet10t --image_size 128 --patch_size 64 --per_device_batch_size 48 --max_steps 1200 \
        --learning_rate 3e-4 --weight_decay 1e-4 --temperature 0.07 --augment_preset fiser \
        --aug_symmetric_codec 1.0 --aug_random_resized_crop 0 --logging_steps 20 --checkpointing_steps 200 \
        --num_workers 0 --seed 0 "$@"
}
encoder_pair() {  # encoder_pair SUFFIX [flags]: the full model and its coarse-only ablation, side by side
    local suffix=$1; shift
    encoder "fiser_full$suffix" "$@" &
    local full=$!
    encoder "fiser_coarse$suffix" --fine_weight 0 "$@" &
    local coarse=$!
    wait "$full"
    wait "$coarse"
}
encoder_pair ""
# The same pair again with training seed 1 (initialisation, batch order, augmentation), to see how much of a
# difference between the two is the seed.
encoder_pair _seed1 --seed 1
encoders="fiser_full fiser_coarse fiser_full_seed1 fiser_coarse_seed1"

# 3. Heads on the frozen encoders, fitted on the training images under the normalized protocol (no augmentation):
#    the kNN bank (k 25) and the class prototypes.
for run in $encoders; do
    for head in knn prototype; do
        [ -d "$runs/${run}_$head" ] || timed "${run}_$head" $aigi fit-head --model "$runs/$run/final" \
            --data "$data/train.csv" --head "$head" --protocol normalized --output "$runs/${run}_$head"
    done
done

# 4. Evaluation on the held-aside test splits, each scored on its own so that real and fake share size and format:
#    external's (SD/LDM fakes vs photos) and the local set's (the six local generators, the held-out one included,
#    vs real crops cut like them: all 64-px PNG), both under the normalized protocol; and external2 (GAN-heavy, other
#    photos, never seen in training) under normalized_128.
evaluate() {  # evaluate DETECTOR NAME DATA PROTOCOL
    [ -f "$results/$2/metrics.json" ] && return
    timed "eval_$2" $aigi evaluate --model "$1" --data "$3" --protocol "$4" --output "$results/$2"
}
for run in $encoders; do
    for head in knn prototype; do
        evaluate "$runs/${run}_$head" "${run}_${head}/external" "$runs/external_split/test" normalized
        evaluate "$runs/${run}_$head" "${run}_${head}/local" "$runs/local_generators_split/test" normalized
        evaluate "$runs/${run}_$head" "${run}_${head}/external2" "$runs/external2_split/test" normalized_128
    done
done

# 5. Few-shot adaptation (RBF SVM, C 1, gamma "scale", 10 real + 10 fake, 5 seeds) on the frozen encoders:
#    (a) to the generator left out of training: support from the local train split (reals + held-out fakes), scored
#        on the local test split (its per-generator row); (b) to external2: support from its train split, scored on
#        its test split.
fewshot() {  # fewshot ENCODER_RUN DATA OUTPUT [flags]
    local run=$1 source=$2 output=$3; shift 3
    [ -d "$output" ] || $aigi fewshot --model "$runs/$run/final" --data "$source" --shots 10 --output "$output" "$@"
}
for run in fiser_full fiser_coarse; do
    for seed in 0 1 2 3 4; do
        fewshot "$run" "$runs/local_generators_split/train" "$runs/${run}_svm_${held_out}_$seed" \
            --fake-generators "$held_out" --protocol normalized --seed "$seed"
        evaluate "$runs/${run}_svm_${held_out}_$seed" "${run}_svm10/${held_out}_seed$seed" \
            "$runs/local_generators_split/test" normalized
        fewshot "$run" "$runs/external2_split/train" "$runs/${run}_svm_external2_$seed" \
            --protocol normalized_128 --seed "$seed"
        evaluate "$runs/${run}_svm_external2_$seed" "${run}_svm10/external2_seed$seed" \
            "$runs/external2_split/test" normalized_128
    done
done

# 6. Feature-space pictures (t-SNE of the test features, real vs each generator), and the summary tables.
for run in fiser_full fiser_coarse; do
    $aigi feature-map --model "$runs/${run}_prototype" --data "$runs/local_generators_split/test" \
        --protocol normalized --output "$results/${run}_tsne_local_test.png"
done
"$python" recipes/fiser_summary.py "$results" --held-out "$held_out"
