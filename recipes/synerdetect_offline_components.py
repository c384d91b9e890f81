"""The parts of the offline SynerDetect configuration (`recipes/synerdetect_offline.sh`), in the folder layouts that
`python -m aigi.train --task synerdetect --clip_model DIR/clip --diffusion_model DIR/diffusion` loads for the paper's
openai/clip-vit-large-patch14 and stabilityai/stable-diffusion-2-1-base:

* `DIR/clip/`: a small `CLIPModel` (transformers folder), randomly initialised (seeded), never trained here. Its
  vision tower initialises E_v and E_d (trained in full by SynerDetect with `train_vision_towers`); its text tower is
  SynerDetect's frozen text encoder, i.e. random: the prompts are learned context tokens read through a fixed random
  transformer, with the [Real] / [Fake] class tokens' random embeddings. No tokenizer is saved (SynerDetect needs
  none: it looks the class tokens up by id; the vocabulary keeps CLIP's 49,408 ids so the default ids are valid).
* `DIR/diffusion/unet/` + `DIR/diffusion/scheduler/`: a small diffusers `UNet2DConditionModel` trained here as a
  pixel-space epsilon-prediction diffusion model (DDPM objective, linear betas 1e-4..0.02, 1,000 steps) on native-
  resolution random crops of the real photos of `--train_data` (its fakes are dropped), and the DDIM scheduler
  config. No `vae/`: pixel space (SynerDetect's `pixel_space` config field). The UNet is trained unconditionally: its
  cross-attention context is all zeros (the "empty prompt"); SynerDetect's CMID and inversion then feed it the learned
  projection of their conditions.

Usage: python recipes/synerdetect_offline_components.py --train_data MANIFEST --output DIR [--steps 200 ...]
Writes DIR/components.json (the settings, the loss curve, wall times and peak memory).
"""

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPConfig, CLIPModel

from aigi.data.records import load_record_image
from aigi.data.transforms import random_crop_or_pad
from aigi.train.samples import real_photos

# CLIP's BPE vocabulary size and positions, so SynerDetect's default prompt token ids are valid in the small tower.
CLIP_VOCABULARY = dict(vocab_size=49408, max_position_embeddings=77, pad_token_id=1, bos_token_id=49406,
                       eos_token_id=49407)


def clip_config(image_size: int, width: int, layers: int, patch_size: int) -> CLIPConfig:
    heads = max(1, width // 32)
    vision = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                  num_attention_heads=heads, image_size=image_size, patch_size=patch_size, hidden_act="quick_gelu")
    text = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=heads,
                hidden_act="quick_gelu", **CLIP_VOCABULARY)
    return CLIPConfig(vision_config=vision, text_config=text, projection_dim=width)


def unet_config(image_size: int, channels: list[int], cross_attention_dim: int) -> dict:
    """Cross-attention only at the lowest resolution (and the mid block): attention over the 4,096 positions of a
    64-px image costs about 35 s a step at batch 16 on one CPU thread."""
    levels = len(channels)
    return dict(
        sample_size=image_size, in_channels=3, out_channels=3, block_out_channels=channels, layers_per_block=1,
        down_block_types=["DownBlock2D"] * (levels - 1) + ["CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D"] + ["UpBlock2D"] * (levels - 1),
        attention_head_dim=8, cross_attention_dim=cross_attention_dim, norm_num_groups=8,
    )


SCHEDULE = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                prediction_type="epsilon", clip_sample=False)


def real_crops(train_data: str, crop_size: int, crops_per_image: int, seed: int) -> torch.Tensor:
    """`[N, 3, S, S]` crops in [-1, 1] of the real photos, `crops_per_image` random ones each (never resampled)."""
    rng = random.Random(seed)
    crops = []
    for record in real_photos(train_data):
        image = load_record_image(record)
        for _ in range(crops_per_image):
            crops.append(np.asarray(random_crop_or_pad(image, crop_size, rng), dtype=np.uint8))
    pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    return pixels / 127.5 - 1.0


def peak_memory_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_data", required=True, help="manifest (or any layout); its real photos are used")
    parser.add_argument("--output", required=True)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--clip_width", type=int, default=128)
    parser.add_argument("--clip_layers", type=int, default=4)
    parser.add_argument("--clip_patch_size", type=int, default=8)
    parser.add_argument("--unet_channels", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--cross_attention_dim", type=int, default=64)
    parser.add_argument("--condition_tokens", type=int, default=4, help="length of the all-zero training context")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--crops_per_image", type=int, default=2)
    parser.add_argument("--max_images", type=int, default=0, help="use only this many crops (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    output = Path(args.output)
    if (output / "components.json").is_file():
        print(f"{output} is complete; nothing to do")
        return json.loads((output / "components.json").read_text())
    started = time.time()

    torch.manual_seed(args.seed)
    clip = CLIPModel(clip_config(args.image_size, args.clip_width, args.clip_layers, args.clip_patch_size))
    clip.save_pretrained(output / "clip")

    crops = real_crops(args.train_data, args.image_size, args.crops_per_image, args.seed)
    if args.max_images:
        crops = crops[: args.max_images]
    decoded = time.time()

    torch.manual_seed(args.seed)
    unet = UNet2DConditionModel.from_config(unet_config(args.image_size, args.unet_channels,
                                                        args.cross_attention_dim))
    noise_scheduler = DDPMScheduler(**SCHEDULE)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.learning_rate, weight_decay=0.0)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate, total_steps=args.steps,
                                                      pct_start=0.05)
    generator = torch.Generator().manual_seed(args.seed)
    context = torch.zeros(args.batch_size, args.condition_tokens, args.cross_attention_dim)
    log, running = [], []
    unet.train()
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(crops), (args.batch_size,), generator=generator)
        clean = crops[index]
        flips = torch.rand(args.batch_size, generator=generator) < 0.5
        clean = torch.where(flips.view(-1, 1, 1, 1), clean.flip(-1), clean)
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, SCHEDULE["num_train_timesteps"], (args.batch_size,), generator=generator)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        loss = torch.nn.functional.mse_loss(unet(noisy, timesteps, encoder_hidden_states=context).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        running.append(loss.item())
        if step % 20 == 0 or step == args.steps:
            log.append({"step": step, "loss": round(float(np.mean(running)), 5),
                        "elapsed_s": round(time.time() - decoded, 1)})
            running = []
            print(json.dumps(log[-1]), flush=True)
    unet.eval()
    unet.save_pretrained(output / "diffusion" / "unet")
    # The schedule SynerDetect reads (num_train_timesteps, betas, prediction_type) in SD's DDIM layout.
    DDIMScheduler(**SCHEDULE, set_alpha_to_one=False, steps_offset=1).save_pretrained(output / "diffusion" /
                                                                                       "scheduler")
    record = {
        "command": " ".join([sys.executable, *sys.argv]),
        "settings": vars(args),
        "real_crops": len(crops),
        "unet_parameters": sum(parameter.numel() for parameter in unet.parameters()),
        "clip_parameters": sum(parameter.numel() for parameter in clip.parameters()),
        "decode_s": round(decoded - started, 1),
        "train_s": round(time.time() - decoded, 1),
        "peak_rss_mb": peak_memory_mb(),
        "log": log,
    }
    (output / "components.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
