"""Aligned pseudo-fakes: real photos and their reconstructions by a KL-f8 autoencoder trained here.

Usage: python datasets_scripts/build_autoencoder_pseudo_fakes.py POOL_MANIFEST OUT [--per-source 24] [--steps 2000]
       [--width 32,64,128,128] [--seed 0] [--report-dir results/datasets/autoencoder_pseudo_fakes]

Most latent generators decode with a KL-f8 VAE; Rajan et al. (ICLR 2025, "Aligned Datasets Improve Detection of Latent
Diffusion-Generated Images") train on real photos and their reconstructions by the LDM autoencoder, no denoising,
so that the only difference between the classes is the decoder's trace. No Stable Diffusion VAE weights can be had
here, so this script trains a `diffusers.AutoencoderKL` with SD's block structure (4 down / up blocks, 4 latent
channels, 8x downsampling) at reduced width (`--width`: the blocks' channels; SD's are 128,256,512,512) on the real
photos themselves, then reconstructs them.

- Photos: up to `--per-source` real records of every source group of POOL_MANIFEST (the training pool's
  `manifest.csv`), each centre-cropped or reflect-padded to 256 x 256 (`center_crop_or_pad`, never resampled), the
  crop the `normalized` protocol takes.
- Training: random 64-px crops of those photos, L1 + L1 of the 3x3 high-pass residual (a cheap stand-in for SD's
  perceptual and adversarial terms, which keep its reconstructions sharp) + 1e-6 KL, bf16 autocast (twice as fast on
  this CPU), `--steps` Adam steps.
- Reconstructions: each photo's 256-px crop through encoder (posterior mean) and decoder in float32, saved as PNG.

OUT gets `fake/aigi_kl_f8_vae/*.png` and `manifest.csv` (`path,label,generator,source,real_path`: the source is
`aigi:kl-f8-vae reconstructions of <the photo's source>`, one source group for all; `real_path`, the photo's absolute
path, pairs every reconstruction with it, so a cross-source fit can use only the pairs of its training photos). `--report-dir`
gets `build_log.json` (steps, loss curve, reconstruction PSNR) and `pairs.png` (photos above their reconstructions).
The autoencoder's weights are not kept.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from PIL import Image
from tqdm import tqdm

from aigi.data.layouts import read_manifest
from aigi.data.records import load_record_image
from aigi.data.sources import source_group
from aigi.data.transforms import center_crop_or_pad
from aigi.image_io import ImageLoadError
from aigi.modeling.fiser.modeling_fiser import highpass_residual

GENERATOR = "aigi_kl_f8_vae"
CROP, TRAIN_CROP = 256, 64


def small_kl_f8_autoencoder(block_out_channels: tuple[int, ...] = (32, 64, 128, 128)) -> AutoencoderKL:
    """SD's AutoencoderKL layout (4 down/up blocks: 8x downsampling, 4 latent channels) at reduced width."""
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * len(block_out_channels),
        up_block_types=["UpDecoderBlock2D"] * len(block_out_channels), block_out_channels=block_out_channels,
        # SD's group norms have 4 channels per group (128 / 32); one channel per group would remove every channel's
        # mean from the first block, the colour of the crop, and the reconstructions come out grey.
        layers_per_block=1, latent_channels=4, norm_num_groups=max(1, block_out_channels[0] // 4), sample_size=CROP)


def choose_photos(records: list, per_source: int, seed: int) -> list:
    """Up to `per_source` real records of every source group, drawn with `seed`, in a stable order."""
    groups = defaultdict(list)
    for record in records:
        if record.label == 0:
            groups[source_group(record)].append(record)
    rng = random.Random(seed)
    chosen = []
    for group in sorted(groups):
        members = sorted(groups[group], key=lambda record: record.id)
        chosen += rng.sample(members, min(per_source, len(members)))
    return chosen


def to_tensor(arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    return ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def train_autoencoder(photos: np.ndarray, steps: int, seed: int, batch_size: int = 16, lr: float = 1e-3,
                      block_out_channels: tuple[int, ...] = (32, 64, 128, 128)) -> tuple[AutoencoderKL, list[float]]:
    """The autoencoder trained on random `TRAIN_CROP` crops of `photos` (uint8, N x 256 x 256 x 3); its loss curve."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vae = small_kl_f8_autoencoder(block_out_channels).train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.05)
    losses = []
    progress = tqdm(range(steps), desc="autoencoder", unit="step")
    for step in progress:
        index = rng.integers(len(photos), size=batch_size)
        top, left = rng.integers(CROP - TRAIN_CROP + 1, size=(2, batch_size))
        crops = np.stack([photos[i, t:t + TRAIN_CROP, l:l + TRAIN_CROP] for i, t, l in zip(index, top, left)])
        pixels = to_tensor(crops)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            posterior = vae.encode(pixels).latent_dist
            reconstruction = vae.decode(posterior.sample()).sample.float()
        # highpass_residual is 4 x (pixels - 3x3 blur); the loss weighs the unscaled residual.
        loss = (F.l1_loss(reconstruction, pixels)
                + F.l1_loss(highpass_residual(reconstruction), highpass_residual(pixels)) / 4
                + 1e-6 * posterior.kl().float().mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 50 == 0:
            progress.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return vae.eval(), losses


@torch.inference_mode()
def reconstruct(vae: AutoencoderKL, photos: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """float32 reconstructions (posterior mean through the decoder) of uint8 photos, as uint8."""
    chunks = []
    for start in tqdm(range(0, len(photos), batch_size), desc="reconstructions", unit="batch"):
        pixels = to_tensor(photos[start:start + batch_size])
        chunks.append(to_uint8(vae.decode(vae.encode(pixels).latent_dist.mode()).sample))
    return np.concatenate(chunks)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-12)))


def pair_grid(photos: np.ndarray, reconstructions: np.ndarray, columns: int = 8) -> Image.Image:
    top = np.concatenate(list(photos[:columns]), axis=1)
    bottom = np.concatenate(list(reconstructions[:columns]), axis=1)
    return Image.fromarray(np.concatenate([top, bottom], axis=0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, help="the training pool's manifest.csv")
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-source", type=int, default=24)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--width", default="32,64,128,128", help="the encoder and decoder blocks' channels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-dir", type=Path)
    args = parser.parse_args(argv)

    start = time.time()
    photos, records, failures = [], [], []
    for record in tqdm(choose_photos(list(read_manifest(args.manifest)), args.per_source, args.seed),
                       desc="photos", unit="img"):
        try:
            photos.append(np.asarray(center_crop_or_pad(load_record_image(record), CROP)))
        except ImageLoadError as error:
            failures.append({"id": record.id, "error": str(error)})
            continue
        records.append(record)
    photos = np.stack(photos)
    width = tuple(int(channels) for channels in args.width.split(","))
    vae, losses = train_autoencoder(photos, args.steps, args.seed, block_out_channels=width)
    reconstructions = reconstruct(vae, photos)

    folder = args.out / "fake" / GENERATOR
    folder.mkdir(parents=True, exist_ok=True)
    with open(args.out / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "generator", "source", "real_path"])
        for record, reconstruction in zip(records, reconstructions):
            name = hashlib.sha1(record.id.encode()).hexdigest()[:16] + ".png"
            Image.fromarray(reconstruction).save(folder / name)
            writer.writerow([f"fake/{GENERATOR}/{name}", "fake", GENERATOR,
                             f"aigi:kl-f8-vae reconstructions of {record.source}", os.path.abspath(record.image)])
    log = {"photos": len(records), "unreadable": failures, "per_source": args.per_source, "steps": args.steps,
           "block_out_channels": list(width),
           "seed": args.seed, "train_crop": TRAIN_CROP, "loss_first_100": float(np.mean(losses[:100])),
           "loss_last_100": float(np.mean(losses[-100:])), "loss_curve": losses[::max(1, len(losses) // 200)],
           "reconstruction_psnr_mean": float(np.mean([psnr(a, b) for a, b in zip(photos, reconstructions)])),
           "seconds": time.time() - start}
    if args.report_dir is not None:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        (args.report_dir / "build_log.json").write_text(json.dumps(log, indent=2) + "\n")
        pair_grid(photos, reconstructions).save(args.report_dir / "pairs.png")
    print(f"{len(records)} reconstructions in {args.out} (PSNR {log['reconstruction_psnr_mean']:.2f} dB, "
          f"{log['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
