"""SynerDetect's training: the paper's objective (`aigi.losses.synerdetect_losses`, Eqs. 2 and 6-9) end to end.

A run starts from `--model` (a SynerDetect checkpoint) or assembles the paper's model from pretrained parts:
`--clip_model`, a transformers `CLIPModel` (e.g. openai/clip-vit-large-patch14) whose vision tower initialises E_v and
E_d and whose text tower is the frozen text encoder, and `--diffusion_model`, a diffusers Stable Diffusion folder or
Hub id with `unet/`, `vae/` and `scheduler/` (epsilon prediction, e.g. stabilityai/stable-diffusion-2-1-base), or
with `unet/` and `scheduler/` only for a pixel-space model (`--synerdetect_config '{"pixel_space": true}'`).

`--inversion_cache DIR` keeps DDIM-inverted noise maps on disk so that a crop seen again is not inverted again.
"""

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import AutoImageProcessor, CLIPModel

from ..data.layouts import load_detection_records
from ..losses import synerdetect_losses
from ..modeling.synerdetect import SynerDetectConfig, SynerDetectForImageClassification, SynerDetectImageProcessor
from .args import TrainingArguments
from .samples import AugmentedDetectionDataset, sample_seed, training_augment


class InversionCache:
    """Noise maps on disk, keyed by the exact pixels of a training crop (SHA-256 of its float32 bytes).

    The key only repeats when the same crop recurs, i.e. without augmentation and with crops as large as the images
    (e.g. ProGAN's 256-px images at `--patch_size 256 --augment_preset none`); any other crop is a miss and is
    inverted, so the cache never returns a map of a different input. The inversion is conditioned on prompts that
    keep training, so an entry records the optimizer step it was computed at, and with `max_age_steps > 0` an entry
    older than that is recomputed (0 keeps entries for the whole run). Files are written atomically, one per crop,
    so processes can share the folder.
    """

    def __init__(self, directory: str | Path, max_age_steps: int = 0):
        self.directory, self.max_age_steps = Path(directory), max_age_steps
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(pixel_values: torch.Tensor) -> str:
        return hashlib.sha256(pixel_values.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def get(self, key: str, step: int) -> torch.Tensor | None:
        path = self.path(key)
        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt") as handle:
            computed_at = int(handle.metadata()["step"])
            if self.max_age_steps and step - computed_at > self.max_age_steps:
                return None
            return handle.get_tensor("noise_map")

    def put(self, key: str, noise_map: torch.Tensor, step: int) -> None:
        path = self.path(key)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        save_file({"noise_map": noise_map.detach().float().cpu().contiguous()}, str(partial),
                  metadata={"step": str(step)})
        os.replace(partial, path)

    def noise_maps(
        self, pixel_values: torch.Tensor, step: int, invert: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, int]:
        """(noise maps of the batch, number of cache hits): misses are inverted together by `invert` and stored."""
        keys = [self.key(image) for image in pixel_values]
        cached = [self.get(key, step) for key in keys]
        misses = [index for index, noise_map in enumerate(cached) if noise_map is None]
        if misses:
            inverted = invert(pixel_values[misses])
            for index, noise_map in zip(misses, inverted):
                self.put(keys[index], noise_map, step)
                cached[index] = noise_map
        maps = torch.stack([noise_map.to(pixel_values.device, torch.float32) for noise_map in cached])
        return maps, len(keys) - len(misses)


def synerdetect_from_components(
    clip_model: str, diffusion_model: str, **config_fields
) -> SynerDetectForImageClassification:
    """A SynerDetect detector whose CLIP towers, UNet and VAE are the given pretrained ones (LoRA and the new parts
    freshly initialised). Refuses a diffusion model that does not predict the noise (e.g. the 768-px SD 2.1)."""
    scheduler = DDIMScheduler.load_config(diffusion_model, subfolder="scheduler")
    prediction_type = scheduler.get("prediction_type", "epsilon")
    if prediction_type != "epsilon":
        raise ValueError(
            f"{diffusion_model} predicts {prediction_type!r}; SynerDetect's reconstruction loss and DDIM inversion are "
            "written for epsilon prediction (use stabilityai/stable-diffusion-2-1-base, not stable-diffusion-2-1)"
        )
    clip = CLIPModel.from_pretrained(clip_model)
    unet = UNet2DConditionModel.from_pretrained(diffusion_model, subfolder="unet")
    # A pixel-space diffusion model (`pixel_space`, e.g. recipes/synerdetect_offline_components.py's) has no vae/.
    vae = None if config_fields.get("pixel_space") else AutoencoderKL.from_pretrained(diffusion_model, subfolder="vae")
    # CLIPModel's projections are sized by its top-level projection_dim, whatever the sub-configs say.
    vision_config = {**clip.config.vision_config.to_dict(), "projection_dim": clip.config.projection_dim}
    config = SynerDetectConfig(
        vision_config=vision_config, noise_vision_config=dict(vision_config),
        text_config={**clip.config.text_config.to_dict(), "projection_dim": clip.config.projection_dim},
        unet_config=dict(unet.config), vae_config=None if vae is None else dict(vae.config),
        num_train_timesteps=scheduler["num_train_timesteps"], beta_start=scheduler["beta_start"],
        beta_end=scheduler["beta_end"], beta_schedule=scheduler["beta_schedule"], **config_fields,
    )
    model = SynerDetectForImageClassification(config)
    model.synerdetect.load_component_weights(clip.state_dict(), unet.state_dict(),
                                             None if vae is None else vae.state_dict())
    return model


class SynerDetectTask:
    """Hierarchical synergistic training: `lambda L_CR + (1 - lambda) (L_DCL + alpha L_POT)` on real and fake images.

    The CMID timesteps and noise of each step come from a generator seeded by (seed, step, process), so a resumed
    run draws the same ones. Logged next to the loss: its three terms and, with a cache, the fraction of hits.
    """

    memory_format = torch.contiguous_format
    find_unused_parameters = False
    collate = None

    def __init__(self, args: TrainingArguments):
        self.args = args
        self.cache = None
        if args.inversion_cache:
            self.cache = InversionCache(args.inversion_cache, args.inversion_cache_max_age)
        if args.model:
            self.processor = AutoImageProcessor.from_pretrained(args.model)
        else:
            self.processor = SynerDetectImageProcessor(crop_size={"height": args.image_size, "width": args.image_size})

    def build_model(self) -> nn.Module:
        overrides = {} if self.args.inversion_steps is None else {"inversion_steps": self.args.inversion_steps}
        if self.args.model:
            model = SynerDetectForImageClassification.from_pretrained(self.args.model, **overrides)
        else:
            choices = json.loads(self.args.synerdetect_config) if self.args.synerdetect_config else {}
            model = synerdetect_from_components(
                self.args.clip_model, self.args.diffusion_model, **{"image_size": self.args.image_size, **choices,
                                                                     **overrides}
            )
        if self.args.per_device_batch_size < model.config.gmm_num_components:
            raise ValueError(f"the GMM prototypes are fitted per batch: per_device_batch_size must be at least "
                             f"gmm_num_components ({model.config.gmm_num_components})")
        return model

    def build_dataset(self) -> torch.utils.data.Dataset:
        records = load_detection_records(self.args.train_data)
        if {record.label for record in records} != {0, 1}:
            raise ValueError(f"SynerDetect training needs real and fake images; {self.args.train_data} lacks one class")
        return AugmentedDetectionDataset(
            records, self.processor, training_augment(self.args), crop_size=self.args.patch_size, seed=self.args.seed,
        )

    def compute_loss(self, model: nn.Module, batch: dict, step: int, process_index: int):
        synerdetect = getattr(model, "module", model)
        config = synerdetect.config
        pixel_values, labels = batch["pixel_values"], batch["labels"]
        generator = torch.Generator().manual_seed(sample_seed(self.args.seed, step, process_index))
        latent_side = pixel_values.shape[-1] // config.latent_downsampling
        noise_shape = (len(labels), config.latent_channels, latent_side, latent_side)
        reconstruction_noise = torch.randn(noise_shape, generator=generator).to(pixel_values.device)
        timesteps = torch.randint(config.reconstruction_min_timestep, config.reconstruction_max_timestep,
                                  (len(labels),), generator=generator).to(pixel_values.device)
        noise_maps, metrics = None, {}
        if self.cache is not None:
            noise_maps, hits = self.cache.noise_maps(pixel_values, step, synerdetect.synerdetect.invert_images)
            metrics["inversion_cache_hits"] = torch.tensor(hits / len(labels), device=pixel_values.device)
        outputs = model(
            pixel_values=pixel_values, labels=labels, noise_maps=noise_maps,
            reconstruction_noise=reconstruction_noise, reconstruction_timesteps=timesteps,
        )
        return {**synerdetect_losses(outputs, reconstruction_noise, labels, config), **metrics}

    def trainable_parameters(self, model: nn.Module):
        return [parameter for parameter in model.parameters() if parameter.requires_grad]

    def save_final(self, model: nn.Module, directory: str) -> None:
        model.save_pretrained(directory)
        self.processor.save_pretrained(directory)
