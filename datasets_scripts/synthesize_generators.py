"""Train small generators of distinct architectures on real photos and sample a labelled set.

Usage: python datasets_scripts/synthesize_generators.py OUT [--real-dir DIR] [--seed 0]
       [--steps-scale 1.0] [--images-per-generator 250] [--report-dir results/local_generators/]

Six generators learn from random crops of the photos in `--real-dir`:
  - four DCGAN generators that differ only in how they upsample (transposed conv, nearest+conv,
    bilinear+conv, pixel shuffle) and share one DCGAN discriminator design and training step;
  - a small convolutional VAE;
  - a small DDPM (`diffusers.UNet2DModel`, epsilon prediction, sampled with 50 DDIM steps).
They are weak generators, but their traces come from real architectures: the set feeds a
detector's per-generator ("fine") contrastive term and cross-architecture tests.

Resolution is 64x64: it is the native size of the DCGAN design, and on a 2-core CPU the default
build (all six trained and sampled) has to fit in under an hour; at 96x96 every step costs about
2.3x more, which would leave too few training steps for any sample to look like a photo.

OUT gets `real/*.png` (crops made exactly like the training crops: the same resolution and PNG,
so real and fake differ in neither size nor format), `fake/<generator>/*.png` and `manifest.csv`
(`path,label,generator,source`). `--report-dir` gets a sample grid per generator, a combined grid
(a row per generator plus a row of real crops) and `build_log.json`. Generator weights are never
written anywhere.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
# Idle OpenMP threads otherwise spin: when other jobs share the two cores, a 2-thread training step
# then runs about 6x slower than with passive waiting (measured). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import diffusers
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from PIL import Image, ImageDraw
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from aigi.image_io import collect_image_files

RESOLUTION = 64
# The shared development data sits next to the repository checkout (as in recipes/: ../shared/data).
DEFAULT_REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "real"
# Crop sides are drawn from [MIN_CROP_FRACTION, 1] x the photo's short side, so every crop is
# downscaled (antialiased) by 2-4x from the mostly 256-px photos.
MIN_CROP_FRACTION = 0.5
SAMPLING_BATCH = 50
GRID_COLUMNS = 8
GRID_SAMPLES = 64
COMBINED_GRID_COLUMNS = 12
LOSS_WINDOW = 50  # the reported final loss is the mean over this many last steps

GAN_LATENT_DIM = 100
GAN_WIDTH = 32  # DCGAN's ngf / ndf
VAE_LATENT_DIM = 64
# Fixed decoder standard deviation of the VAE's Gaussian likelihood, in [-1, 1] pixel units:
# smaller gives sharper but less prior-like samples.
VAE_DECODER_STD = 0.3
DDPM_TRAIN_TIMESTEPS = 1000
DEFAULT_DDIM_STEPS = 50
DDPM_EMA_DECAY = 0.995

def progress(iterable: Iterable, description: str, total: int | None = None) -> tqdm:
    """A tqdm bar; sparse updates when stderr is a log file rather than a terminal."""
    return tqdm(iterable, desc=description, total=total, dynamic_ncols=True,
                mininterval=0.1 if sys.stderr.isatty() else 30.0)


def derived_seed(seed: int, name: str) -> int:
    """A seed for one named part of the build, independent of which other parts run."""
    return zlib.crc32(f"{seed}/{name}".encode())


def images_to_tensor(images: list[Image.Image]) -> Tensor:
    pixels = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_images(batch: Tensor) -> list[Image.Image]:
    pixels = batch.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)
    return [Image.fromarray(array) for array in pixels.permute(0, 2, 3, 1).numpy()]


class RealCropSampler:
    """Random square crops of photos, resized (antialiased) to RESOLUTION, randomly flipped."""

    def __init__(self, photos: list[Image.Image], rng: np.random.Generator) -> None:
        self.photos = photos
        self.rng = rng

    def crop_of(self, photo: Image.Image) -> Image.Image:
        width, height = photo.size
        side = self.rng.uniform(MIN_CROP_FRACTION, 1.0) * min(width, height)
        left = self.rng.uniform(0.0, width - side)
        top = self.rng.uniform(0.0, height - side)
        crop = photo.resize((RESOLUTION, RESOLUTION), Image.Resampling.BICUBIC,
                            box=(left, top, left + side, top + side))
        if self.rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return crop

    def batch(self, size: int) -> Tensor:
        """`size` crops of randomly chosen photos as a tensor in [-1, 1]."""
        indices = self.rng.integers(0, len(self.photos), size)
        return images_to_tensor([self.crop_of(self.photos[index]) for index in indices])


class LocalGenerator(ABC):
    """A generative model trained one batch of real crops at a time, sampled in [-1, 1]."""

    @abstractmethod
    def train_step(self, real: Tensor) -> dict[str, float]:
        """One optimisation step on a batch of real images; returns the named losses."""

    @abstractmethod
    def sample(self, count: int, noise: torch.Generator) -> Tensor:
        """`count` images of shape (3, RESOLUTION, RESOLUTION), all randomness from `noise`."""

    @abstractmethod
    def sampling_network(self) -> nn.Module:
        """The network that turns noise into images (generator, decoder, denoiser)."""

    @abstractmethod
    def trained_networks(self) -> list[nn.Module]:
        """Every network trained, including discriminators and encoders."""


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: N(0, 0.02) conv weights, N(1, 0.02) norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


Upsampler = Callable[[int, int], nn.Module]  # (in_channels, out_channels) -> a 2x upsampling layer


def transposed_conv_upsampler(in_channels: int, out_channels: int) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)


def resize_conv_upsampler(mode: str) -> Upsampler:
    """Interpolation (`nearest` or `bilinear`) followed by a 3x3 convolution."""

    def build(in_channels: int, out_channels: int) -> nn.Module:
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode),
                             nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))

    return build


def pixel_shuffle_upsampler(in_channels: int, out_channels: int) -> nn.Module:
    """Sub-pixel convolution: a 3x3 conv to 4x the channels, rearranged into 2x the size."""
    return nn.Sequential(nn.Conv2d(in_channels, 4 * out_channels, kernel_size=3, padding=1),
                         nn.PixelShuffle(2))


def dcgan_generator(upsampler: Upsampler) -> nn.Module:
    """DCGAN generator: latent -> 4x4x(8w) -> four 2x upsamplings (BN+ReLU between) -> tanh."""
    channels = [8 * GAN_WIDTH, 4 * GAN_WIDTH, 2 * GAN_WIDTH, GAN_WIDTH]
    layers: list[nn.Module] = [nn.Linear(GAN_LATENT_DIM, channels[0] * 4 * 4, bias=False),
                               nn.Unflatten(1, (channels[0], 4, 4)),
                               nn.BatchNorm2d(channels[0]), nn.ReLU()]
    for in_channels, out_channels in zip(channels, channels[1:]):
        layers += [upsampler(in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU()]
    layers += [upsampler(channels[-1], 3), nn.Tanh()]
    return nn.Sequential(*layers)


def dcgan_discriminator() -> nn.Module:
    """DCGAN discriminator: four stride-2 4x4 convs (BN + LeakyReLU) and a 4x4 conv to a logit."""
    channels = [3, GAN_WIDTH, 2 * GAN_WIDTH, 4 * GAN_WIDTH, 8 * GAN_WIDTH]
    layers: list[nn.Module] = []
    for index, (in_channels, out_channels) in enumerate(zip(channels, channels[1:])):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1,
                                bias=index == 0))
        if index > 0:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.LeakyReLU(0.2))
    layers += [nn.Conv2d(channels[-1], 1, kernel_size=4), nn.Flatten(0)]
    return nn.Sequential(*layers)


class DcGan(LocalGenerator):
    """A DCGAN generator with a DCGAN discriminator, trained with the non-saturating loss."""

    def __init__(self, upsampler: Upsampler) -> None:
        self.generator = dcgan_generator(upsampler)
        self.discriminator = dcgan_discriminator()
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)
        self.generator_optimizer = torch.optim.Adam(self.generator.parameters(), lr=2e-4,
                                                    betas=(0.5, 0.999))
        self.discriminator_optimizer = torch.optim.Adam(self.discriminator.parameters(),
                                                        lr=2e-4, betas=(0.5, 0.999))

    def train_step(self, real: Tensor) -> dict[str, float]:
        self.generator.train()
        fake = self.generator(torch.randn(len(real), GAN_LATENT_DIM))
        discriminator_loss = (F.softplus(-self.discriminator(real)).mean()
                              + F.softplus(self.discriminator(fake.detach())).mean())
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        discriminator_loss.backward()
        self.discriminator_optimizer.step()
        generator_loss = F.softplus(-self.discriminator(fake)).mean()
        self.generator_optimizer.zero_grad(set_to_none=True)
        generator_loss.backward()
        self.generator_optimizer.step()
        return {"discriminator": discriminator_loss.item(), "generator": generator_loss.item()}

    @torch.no_grad()
    def sample(self, count: int, noise: torch.Generator) -> Tensor:
        self.generator.eval()
        return self.generator(torch.randn(count, GAN_LATENT_DIM, generator=noise))

    def sampling_network(self) -> nn.Module:
        return self.generator

    def trained_networks(self) -> list[nn.Module]:
        return [self.generator, self.discriminator]


class ConvVae(LocalGenerator):
    """A convolutional VAE: stride-2 conv encoder, transposed-conv decoder, Gaussian likelihood."""

    def __init__(self) -> None:
        channels = [3, 32, 64, 128, 256]
        encoder_layers: list[nn.Module] = []
        for in_channels, out_channels in zip(channels, channels[1:]):
            encoder_layers += [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1),
                               nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*encoder_layers, nn.Flatten(),
                                     nn.Linear(channels[-1] * 4 * 4, 2 * VAE_LATENT_DIM))
        decoder_layers: list[nn.Module] = [nn.Linear(VAE_LATENT_DIM, channels[-1] * 4 * 4),
                                           nn.Unflatten(1, (channels[-1], 4, 4)), nn.ReLU()]
        reversed_channels = channels[::-1]
        for in_channels, out_channels in zip(reversed_channels[:-2], reversed_channels[1:-1]):
            decoder_layers += [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1),
                               nn.BatchNorm2d(out_channels), nn.ReLU()]
        decoder_layers += [nn.ConvTranspose2d(reversed_channels[-2], 3, 4, stride=2, padding=1),
                           nn.Tanh()]
        self.decoder = nn.Sequential(*decoder_layers)
        self.optimizer = torch.optim.Adam([*self.encoder.parameters(),
                                           *self.decoder.parameters()], lr=1e-3)

    def train_step(self, real: Tensor) -> dict[str, float]:
        self.encoder.train()
        self.decoder.train()
        mean, log_variance = self.encoder(real).chunk(2, dim=1)
        latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
        reconstruction = self.decoder(latent)
        negative_log_likelihood = ((reconstruction - real).pow(2).sum(dim=(1, 2, 3))
                                   / (2 * VAE_DECODER_STD ** 2))
        kl_divergence = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(dim=1)
        loss = (negative_log_likelihood + kl_divergence).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"negative_elbo": loss.item(), "kl": kl_divergence.mean().item()}

    @torch.no_grad()
    def sample(self, count: int, noise: torch.Generator) -> Tensor:
        self.decoder.eval()
        return self.decoder(torch.randn(count, VAE_LATENT_DIM, generator=noise))

    def sampling_network(self) -> nn.Module:
        return self.decoder

    def trained_networks(self) -> list[nn.Module]:
        return [self.encoder, self.decoder]


def warmed_up_ema(averaged: Tensor, current: Tensor, updates_so_far: Tensor) -> Tensor:
    """EMA whose decay ramps up to DDPM_EMA_DECAY, so that a short run is not dominated by init."""
    decay = min(DDPM_EMA_DECAY, (1 + updates_so_far.item()) / (10 + updates_so_far.item()))
    return decay * averaged + (1 - decay) * current


class Ddpm(LocalGenerator):
    """A DDPM UNet (diffusers) predicting noise on a cosine schedule; EMA weights, DDIM sampling."""

    def __init__(self, sampling_steps: int) -> None:
        self.sampling_steps = sampling_steps
        self.denoiser = UNet2DModel(
            sample_size=RESOLUTION, in_channels=3, out_channels=3, layers_per_block=1,
            block_out_channels=(16, 32, 64, 128), norm_num_groups=8,
            down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"))
        self.averaged_denoiser = AveragedModel(self.denoiser, avg_fn=warmed_up_ema)
        self.noise_schedule = DDPMScheduler(num_train_timesteps=DDPM_TRAIN_TIMESTEPS,
                                            beta_schedule="squaredcos_cap_v2")
        self.optimizer = torch.optim.AdamW(self.denoiser.parameters(), lr=5e-4)

    def train_step(self, real: Tensor) -> dict[str, float]:
        self.denoiser.train()
        noise = torch.randn_like(real)
        timesteps = torch.randint(0, DDPM_TRAIN_TIMESTEPS, (len(real),))
        noisy = self.noise_schedule.add_noise(real, noise, timesteps)
        loss = F.mse_loss(self.denoiser(noisy, timesteps).sample, noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.averaged_denoiser.update_parameters(self.denoiser)
        return {"noise_mse": loss.item()}

    @torch.no_grad()
    def sample(self, count: int, noise: torch.Generator) -> Tensor:
        denoiser = self.averaged_denoiser.module.eval()
        sampler = DDIMScheduler.from_config(self.noise_schedule.config)
        sampler.set_timesteps(self.sampling_steps)
        images = torch.randn(count, 3, RESOLUTION, RESOLUTION, generator=noise)
        for timestep in sampler.timesteps:
            predicted_noise = denoiser(images, timestep).sample
            images = sampler.step(predicted_noise, timestep, images, eta=0.0).prev_sample
        return images

    def sampling_network(self) -> nn.Module:
        return self.denoiser

    def trained_networks(self) -> list[nn.Module]:
        return [self.denoiser]


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    architecture: str
    build: Callable[[argparse.Namespace], LocalGenerator]  # from the parsed command line
    train_steps: int  # at --steps-scale 1
    batch_size: int


# Step counts fit the default build into about 30 minutes on 2 otherwise idle cores (measured per-step
# costs: DCGANs 0.2-0.36 s, VAE 0.13 s, DDPM 0.8 s plus about 4 minutes of sampling), leaving
# headroom under the one-hour budget when other jobs share the cores.
GENERATOR_SPECS = [
    GeneratorSpec("dcgan_transposed", "DCGAN, upsampling by 4x4 stride-2 transposed conv",
                  lambda args: DcGan(transposed_conv_upsampler), train_steps=700, batch_size=32),
    GeneratorSpec("dcgan_nearest", "DCGAN, upsampling by nearest-neighbour resize + 3x3 conv",
                  lambda args: DcGan(resize_conv_upsampler("nearest")), train_steps=700, batch_size=32),
    GeneratorSpec("dcgan_bilinear", "DCGAN, upsampling by bilinear resize + 3x3 conv",
                  lambda args: DcGan(resize_conv_upsampler("bilinear")), train_steps=700,
                  batch_size=32),
    GeneratorSpec("dcgan_pixelshuffle", "DCGAN, upsampling by sub-pixel conv (3x3 conv + pixel "
                  "shuffle)", lambda args: DcGan(pixel_shuffle_upsampler), train_steps=700,
                  batch_size=32),
    GeneratorSpec("conv_vae", f"convolutional VAE, {VAE_LATENT_DIM}-d latent, transposed-conv "
                  f"decoder, Gaussian likelihood (std {VAE_DECODER_STD})", lambda args: ConvVae(),
                  train_steps=1000, batch_size=32),
    GeneratorSpec("ddpm_unet", "DDPM, diffusers UNet2DModel (16/32/64/128 channels, attention at "
                  f"8x8), cosine schedule, EMA {DDPM_EMA_DECAY}, DDIM sampling",
                  lambda args: Ddpm(args.ddim_steps), train_steps=900, batch_size=16),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder for images and manifest.csv")
    parser.add_argument("--real-dir", type=Path, default=DEFAULT_REAL_DIR,
                        help="folder of real photos to learn from")
    parser.add_argument("--max-photos", type=int, default=None,
                        help="use only the first N photos (sorted by name)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="multiplies every generator's training steps (tests use tiny values)")
    parser.add_argument("--images-per-generator", type=int, default=250)
    parser.add_argument("--real-crops-per-photo", type=int, default=2)
    parser.add_argument("--ddim-steps", type=int, default=DEFAULT_DDIM_STEPS,
                        help="denoising steps when sampling the DDPM")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (results can differ between thread counts)")
    parser.add_argument("--report-dir", type=Path, default=Path("results/local_generators"),
                        help="where the sample grids and build_log.json go")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT if it holds an earlier build (has manifest.csv)")
    return parser.parse_args(argv)


def load_photos(real_dir: Path, max_photos: int | None) -> tuple[list[Path], list[Image.Image]]:
    paths = collect_image_files([real_dir], recursive=False)[:max_photos]
    if not paths:
        raise SystemExit(f"no photos in {real_dir}")
    photos = []
    for path in paths:
        with Image.open(path) as image:
            photos.append(image.convert("RGB"))
    return paths, photos


def train(model: LocalGenerator, crops: RealCropSampler, steps: int, batch_size: int,
          description: str) -> dict[str, float]:
    """Runs `steps` training steps; returns each loss averaged over the last LOSS_WINDOW steps."""
    history: list[dict[str, float]] = []
    bar = progress(range(steps), description)
    for step in bar:
        history.append(model.train_step(crops.batch(batch_size)))
        if step % 25 == 0:
            bar.set_postfix({name: f"{value:.3f}" for name, value in history[-1].items()})
    recent = history[-LOSS_WINDOW:]
    return {name: float(np.mean([losses[name] for losses in recent])) for name in recent[0]}


def sample_images(model: LocalGenerator, count: int, noise: torch.Generator,
                  description: str) -> list[Image.Image]:
    images: list[Image.Image] = []
    for start in progress(range(0, count, SAMPLING_BATCH), description,
                          total=-(-count // SAMPLING_BATCH)):
        images += tensor_to_images(model.sample(min(SAMPLING_BATCH, count - start), noise))
    return images


def parameter_count(networks: list[nn.Module]) -> int:
    return sum(parameter.numel() for network in networks for parameter in network.parameters())


def image_grid(images: list[Image.Image], columns: int, padding: int = 2) -> Image.Image:
    rows = -(-len(images) // columns)
    step = RESOLUTION + padding
    grid = Image.new("RGB", (columns * step + padding, rows * step + padding), "white")
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid.paste(image, (padding + column * step, padding + row * step))
    return grid


def combined_grid(rows: dict[str, list[Image.Image]]) -> Image.Image:
    """One labelled row of COMBINED_GRID_COLUMNS samples per entry of `rows`."""
    label_width = 140
    row_grids = [image_grid(images[:COMBINED_GRID_COLUMNS], COMBINED_GRID_COLUMNS)
                 for images in rows.values()]
    width = label_width + max(grid.width for grid in row_grids)
    canvas = Image.new("RGB", (width, sum(grid.height for grid in row_grids)), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for name, grid in zip(rows, row_grids):
        canvas.paste(grid, (label_width, top))
        draw.text((6, top + grid.height // 2 - 6), name, fill="black")
        top += grid.height
    return canvas


def write_manifest(out: Path, rows: list[dict[str, str]]) -> None:
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as manifest_file:
        writer = csv.DictWriter(manifest_file, fieldnames=["path", "label", "generator", "source"])
        writer.writeheader()
        writer.writerows(rows)


def write_real_crops(args: argparse.Namespace, photo_paths: list[Path],
                     photos: list[Image.Image]) -> tuple[list[Image.Image], list[dict[str, str]]]:
    """Saves `--real-crops-per-photo` seeded crops of every photo; returns them and manifest rows."""
    (args.out / "real").mkdir(parents=True)
    crops = RealCropSampler(photos, np.random.default_rng(derived_seed(args.seed, "real")))
    images: list[Image.Image] = []
    rows: list[dict[str, str]] = []
    for path, photo in zip(progress(photo_paths, "real crops"), photos):
        for crop_index in range(args.real_crops_per_photo):
            crop = crops.crop_of(photo)
            relative_path = f"real/{path.stem}_crop{crop_index}.png"
            crop.save(args.out / relative_path)
            images.append(crop)
            rows.append({"path": relative_path, "label": "real", "generator": "real",
                         "source": "aigi-local/real-crops"})
    return images, rows


def build_generator(spec: GeneratorSpec, args: argparse.Namespace, photos: list[Image.Image]
                    ) -> tuple[list[Image.Image], dict[str, object]]:
    """Trains one generator and samples `--images-per-generator` images; returns them and its log."""
    torch.manual_seed(derived_seed(args.seed, spec.name))
    model = spec.build(args)
    training_crops = RealCropSampler(
        photos, np.random.default_rng(derived_seed(args.seed, f"{spec.name}/crops")))
    steps = max(1, round(spec.train_steps * args.steps_scale))
    train_start = time.perf_counter()
    final_loss = train(model, training_crops, steps, spec.batch_size, f"train {spec.name}")
    train_seconds = time.perf_counter() - train_start

    sampling_start = time.perf_counter()
    noise = torch.Generator().manual_seed(derived_seed(args.seed, f"{spec.name}/sampling"))
    images = sample_images(model, args.images_per_generator, noise, f"sample {spec.name}")
    sampling_seconds = time.perf_counter() - sampling_start
    log = {
        "architecture": spec.architecture,
        "sampling_parameters": parameter_count([model.sampling_network()]),
        "trained_parameters": parameter_count(model.trained_networks()),
        "train_steps": steps,
        "batch_size": spec.batch_size,
        "train_seconds": round(train_seconds, 1),
        "sampling_seconds": round(sampling_seconds, 1),
        "final_loss": final_loss,
        "images": len(images),
    }
    return images, log


def write_fakes(out: Path, generator_name: str, images: list[Image.Image]) -> list[dict[str, str]]:
    (out / "fake" / generator_name).mkdir(parents=True)
    rows = []
    for index, image in enumerate(images):
        relative_path = f"fake/{generator_name}/{generator_name}_{index:05d}.png"
        image.save(out / relative_path)
        rows.append({"path": relative_path, "label": "fake", "generator": generator_name,
                     "source": f"aigi-local/{generator_name}"})
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    build_start = time.perf_counter()
    if args.out.exists() and any(args.out.iterdir()):
        if not (args.overwrite and (args.out / "manifest.csv").is_file()):
            raise SystemExit(f"{args.out} is not empty; pass --overwrite to replace an earlier build")
        shutil.rmtree(args.out)
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    photo_paths, photos = load_photos(args.real_dir, args.max_photos)
    real_images, manifest_rows = write_real_crops(args, photo_paths, photos)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    grid_rows: dict[str, list[Image.Image]] = {}
    generator_logs: dict[str, dict[str, object]] = {}
    for spec in GENERATOR_SPECS:
        images, generator_logs[spec.name] = build_generator(spec, args, photos)
        manifest_rows += write_fakes(args.out, spec.name, images)
        image_grid(images[:GRID_SAMPLES], GRID_COLUMNS).save(args.report_dir / f"{spec.name}.png")
        grid_rows[spec.name] = images

    write_manifest(args.out, manifest_rows)
    # Spread over all photos: consecutive crops come from the same photo.
    grid_rows["real crops"] = real_images[::max(1, len(real_images) // COMBINED_GRID_COLUMNS)]
    combined_grid(grid_rows).save(args.report_dir / "combined_grid.png")
    build_log = {
        "seed": args.seed,
        "resolution": RESOLUTION,
        "steps_scale": args.steps_scale,
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "torch_threads": torch.get_num_threads(),
        "ddim_steps": args.ddim_steps,
        "real_dir": str(args.real_dir),
        "photos": len(photos),
        "real_images": len(real_images),
        "images_per_generator": args.images_per_generator,
        "generators": generator_logs,
        "total_wall_seconds": round(time.perf_counter() - build_start, 1),
    }
    (args.report_dir / "build_log.json").write_text(json.dumps(build_log, indent=2) + "\n",
                                                    encoding="utf-8")
    print(f"wrote {len(manifest_rows)} images to {args.out} and the report to {args.report_dir}")


if __name__ == "__main__":
    main()
