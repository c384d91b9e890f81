"""SynerDetect detector: CLIP perceptual and text towers with a frozen Stable Diffusion UNet and VAE.

`SynerDetectModel` computes the three embeddings of the paper: z_v (perceptual encoder E_v with LoRA), z_t (one
prompt per class, from context tokens refined by the visual-aware tuner, through the frozen CLIP text encoder) and
z_n (encoder E_d with LoRA on the latent noise map of a DDIM inversion conditioned on z_t). Given timesteps and noise
it also returns the CMID noise prediction of the frozen UNet conditioned on c = z_v + z_t. The training objective
(OT-DCL + CMID) is `aigi.losses.synerdetect_losses`; the inversion cache of training is `aigi.train.synerdetect`.
"""

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDIMInverseScheduler, UNet2DConditionModel
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn
from torch.nn import functional
from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection, PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput

from .configuration_synerdetect import SynerDetectConfig

CLIP_IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
LORA_ADAPTER_NAME = "default"


def add_lora(tower: nn.Module, config: SynerDetectConfig) -> None:
    lora_config = LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
    )
    inject_adapter_in_model(lora_config, tower, adapter_name=LORA_ADAPTER_NAME)
    for layer in lora_layers(tower):
        # peft has initialised the adapters (B = 0); the transformers init pass must not draw them again.
        for module in layer.modules():
            module._is_hf_initialized = True


def lora_layers(module: nn.Module) -> list[LoraLayer]:
    return [child for child in module.modules() if isinstance(child, LoraLayer)]


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return images[..., top : top + size, left : left + size]


def select_prompt(prompt_embeds: torch.Tensor, choice: str, labels: torch.Tensor | None = None) -> torch.Tensor:
    """One prompt embedding per image from `[batch, 2, dim]` class prompts: "label", "mean", "real" or "fake"."""
    if choice == "label":
        if labels is None:
            raise ValueError("the label's prompt was asked for (reconstruction_prompt='label') but no labels given")
        return prompt_embeds[torch.arange(len(prompt_embeds), device=prompt_embeds.device), labels]
    if choice == "mean":
        return prompt_embeds.mean(dim=1)
    return prompt_embeds[:, ("real", "fake").index(choice)]


class BayarConstrainedConv2d(nn.Module):
    """Constrained convolution (Bayar & Stamm, 2018): every 2-d kernel has centre -1 and off-centre weights summing to
    1, so it outputs a prediction error (the pixel minus a weighted sum of its neighbours) and ignores content.

    The free weights are stored per (output, input) kernel as `[out, in, k*k - 1]` and the kernel is assembled in
    that order (MVSS-Net reshapes an `[in, out, k*k]` tensor to `[out, in, k, k]`, mixing kernels when in != out).
    Reflect padding keeps the output of a constant image exactly zero up to the borders.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.off_centre_weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size * kernel_size - 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Positive weights (MVSS-Net's uniform draw) keep the normalising sums far from zero.
        nn.init.uniform_(self.off_centre_weight, 0.0, 1.0)

    def kernel(self) -> torch.Tensor:
        weights = self.off_centre_weight / self.off_centre_weight.sum(dim=-1, keepdim=True)
        centre = (self.kernel_size * self.kernel_size) // 2
        minus_one = -torch.ones_like(weights[..., :1])
        flat = torch.cat([weights[..., :centre], minus_one, weights[..., centre:]], dim=-1)
        return flat.view(self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        padding = self.kernel_size // 2
        padded = functional.pad(images, (padding, padding, padding, padding), mode="reflect")
        return functional.conv2d(padded, self.kernel().to(images.dtype))


class SynerDetectVisualAwareTuner(nn.Module):
    """Eq. 1: `p_hat = p_c + Attn(LN(p_c), LN(z_v), LN(CConv(x)))`.

    The query is LN(p_c); keys and values are the z_v token (mapped to the text width) and the CConv tokens (the
    constrained residual map cut into patches, each linearly embedded), all layer-normalised.
    """

    def __init__(self, config: SynerDetectConfig):
        super().__init__()
        width = config.text_config.hidden_size
        self.context = nn.Parameter(torch.empty(config.num_context_tokens, width))
        self.constrained_conv = BayarConstrainedConv2d(
            3, config.constrained_conv_channels, config.constrained_conv_kernel_size
        )
        self.local_embedding = nn.Conv2d(
            config.constrained_conv_channels, width,
            kernel_size=config.constrained_conv_patch_size, stride=config.constrained_conv_patch_size,
        )
        self.global_embedding = nn.Linear(config.vision_config.projection_dim, width)
        self.context_norm = nn.LayerNorm(width)
        self.global_norm = nn.LayerNorm(width)
        self.local_norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, config.tuner_num_heads, batch_first=True)

    def forward(self, pixel_values: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """`[batch, num_context_tokens, text width]` refined context from images and their z_v."""
        local_tokens = self.local_embedding(self.constrained_conv(pixel_values)).flatten(2).transpose(1, 2)
        global_token = self.global_embedding(image_embeds)[:, None]
        memory = torch.cat([self.global_norm(global_token), self.local_norm(local_tokens)], dim=1)
        context = self.context.expand(len(pixel_values), -1, -1)
        refinement, _ = self.attention(self.context_norm(context), memory, memory, need_weights=False)
        return context + refinement


@dataclass
class SynerDetectModelOutput(ModelOutput):
    """
    image_embeds (`[batch, dim]`): z_v. noise_embeds (`[batch, dim]`): z_n. prompt_embeds (`[batch, 2, dim]`): z_t of
    the [Real] and [Fake] prompts of each image. noise_maps (`[batch, latent channels, h, w]`): the DDIM-inverted
    latents E_d read. reconstruction_prediction (`[batch, latent channels, h, w]`, with reconstruction inputs only):
    the UNet's noise prediction for CMID.
    """

    image_embeds: torch.Tensor | None = None
    noise_embeds: torch.Tensor | None = None
    prompt_embeds: torch.Tensor | None = None
    noise_maps: torch.Tensor | None = None
    reconstruction_prediction: torch.Tensor | None = None


@dataclass
class SynerDetectClassifierOutput(ImageClassifierOutput):
    """Two logits [real, fake] (`s / temperature`), the loss when labels are given, and the model's embeddings."""

    image_embeds: torch.Tensor | None = None
    noise_embeds: torch.Tensor | None = None
    prompt_embeds: torch.Tensor | None = None
    noise_maps: torch.Tensor | None = None
    reconstruction_prediction: torch.Tensor | None = None


class SynerDetectPreTrainedModel(PreTrainedModel):
    config: SynerDetectConfig
    config_class = SynerDetectConfig
    base_model_prefix = "synerdetect"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # CLIP initialises itself and the diffusers models are marked initialised; this covers SynerDetect's parts.
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()
        elif isinstance(module, (nn.Conv2d, BayarConstrainedConv2d)):
            module.reset_parameters()
        elif isinstance(module, SynerDetectVisualAwareTuner):
            init.normal_(module.context, std=0.02)  # CoOp's initialisation of context vectors

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # Loading replaces every floating-point parameter with a trainable one: freeze the fixed parts again.
        getattr(model, model.base_model_prefix, model).freeze_fixed_parameters()
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` keeps one auto class per model class; list the base model too.
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": "configuration_synerdetect.SynerDetectConfig",
                "AutoModel": "modeling_synerdetect.SynerDetectModel",
                "AutoModelForImageClassification": "modeling_synerdetect.SynerDetectForImageClassification",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)


class SynerDetectModel(SynerDetectPreTrainedModel):
    """The embeddings z_v, z_t, z_n (and the CMID noise prediction when asked); see the module docstring."""

    def __init__(self, config: SynerDetectConfig):
        super().__init__(config)
        self.visual_encoder = CLIPVisionModelWithProjection(config.vision_config)
        self.noise_encoder = CLIPVisionModelWithProjection(config.noise_vision_config)
        add_lora(self.visual_encoder, config)
        add_lora(self.noise_encoder, config)
        self.noise_map_adapter = nn.Conv2d(config.latent_channels, config.noise_vision_config.num_channels, 1)
        self.prompt_tuner = SynerDetectVisualAwareTuner(config)
        self.text_encoder = CLIPTextModelWithProjection(config.text_config)
        self.unet = UNet2DConditionModel.from_config(config.unet_config)
        self.vae = None if config.pixel_space else AutoencoderKL.from_config(config.vae_config)
        for module in [*self.unet.modules(), *(self.vae.modules() if self.vae is not None else ())]:
            module._is_hf_initialized = True  # keep diffusers' initialisation (the weights are loaded anyway)
        cross_attention_dim = config.unet_config["cross_attention_dim"]
        self.condition_projection = nn.Linear(
            config.text_config.projection_dim, config.condition_num_tokens * cross_attention_dim
        )
        # SD's DDIM settings (pipelines build DDIMInverseScheduler from the model's scheduler_config.json).
        self.inverse_scheduler = DDIMInverseScheduler(
            num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start, beta_end=config.beta_end,
            beta_schedule=config.beta_schedule, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
            prediction_type="epsilon",
        )
        self.freeze_fixed_parameters()
        self.post_init()

    def freeze_fixed_parameters(self) -> None:
        """Freeze the UNet, the VAE, the text encoder and both vision towers except their LoRA adapters (with
        `config.train_vision_towers`, the towers stay trainable in full)."""
        for frozen in (self.unet, self.vae, self.text_encoder, self.visual_encoder, self.noise_encoder):
            if frozen is not None:
                frozen.requires_grad_(False)
        if self.config.train_vision_towers:
            self.visual_encoder.requires_grad_(True)
            self.noise_encoder.requires_grad_(True)
        for layer in lora_layers(self):
            layer.lora_A.requires_grad_(True)
            layer.lora_B.requires_grad_(True)

    def load_component_weights(
        self,
        clip_state_dict: dict[str, torch.Tensor],
        unet_state_dict: dict[str, torch.Tensor],
        vae_state_dict: dict[str, torch.Tensor] | None,
    ) -> None:
        """Load pretrained parts: a `CLIPModel` state dict (e.g. openai/clip-vit-large-patch14) into E_v, E_d and the
        text encoder, and the UNet and VAE state dicts of a diffusers Stable Diffusion model (no VAE in pixel
        space)."""
        # The towers' names are CLIPModel's (`vision_model.*`, `visual_projection.*`, `text_model.*`, ...); an
        # adapted projection keeps its original weight under `<projection>.base_layer`.
        for tower in (self.visual_encoder, self.noise_encoder, self.text_encoder):
            names = [name for name in tower.state_dict() if "lora_" not in name]
            missing = [name for name in names if name.replace(".base_layer.", ".") not in clip_state_dict]
            if missing:
                raise ValueError(f"the CLIP state dict lacks {len(missing)} weights, e.g. {missing[:3]}")
            tower.load_state_dict({name: clip_state_dict[name.replace(".base_layer.", ".")] for name in names},
                                  strict=False)
        self.unet.load_state_dict(unet_state_dict)
        if self.vae is not None:
            self.vae.load_state_dict(vae_state_dict)
        elif vae_state_dict:
            raise ValueError("a pixel-space SynerDetect has no VAE to load weights into")

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """z_v of [-1, 1] images (E_v reads their CLIP-normalised centre crop)."""
        mean = pixel_values.new_tensor(CLIP_IMAGE_MEAN).view(1, 3, 1, 1)
        std = pixel_values.new_tensor(CLIP_IMAGE_STD).view(1, 3, 1, 1)
        clip_input = centre_crop((pixel_values * 0.5 + 0.5 - mean) / std, self.config.vision_config.image_size)
        return self.visual_encoder(pixel_values=clip_input).image_embeds

    def encode_prompts(self, pixel_values: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """z_t of `[BOS] p_hat [Real] [EOS]` and `[BOS] p_hat [Fake] [EOS]` per image: `[batch, 2, dim]`.

        The text encoder's causal attention means tokens after EOS never change its output, so prompts need no
        padding to CLIP's 77 positions; the EOS position (the last) is pooled as CLIP pools it.
        """
        context = self.prompt_tuner(pixel_values, image_embeds)
        batch, num_classes = len(context), len(self.config.class_token_ids)
        text_model = self.text_encoder.text_model
        token_embedding = text_model.embeddings.token_embedding
        special_ids = torch.tensor([self.config.prompt_start_token_id, self.config.prompt_end_token_id],
                                   device=context.device)
        special = token_embedding(special_ids)
        # [classes, class tokens, width]
        class_tokens = token_embedding(torch.tensor(self.config.class_token_ids, device=context.device))
        prompts = torch.cat([
            special[0].expand(batch, num_classes, 1, -1),
            context[:, None].expand(-1, num_classes, -1, -1),
            class_tokens[None].expand(batch, -1, -1, -1),
            special[1].expand(batch, num_classes, 1, -1),
        ], dim=2).flatten(0, 1)
        hidden = text_model.embeddings(inputs_embeds=prompts.to(token_embedding.weight.dtype))
        mask = create_causal_mask(config=self.config.text_config, inputs_embeds=hidden, attention_mask=None,
                                  cache=None)
        hidden = text_model.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        pooled = text_model.final_layer_norm(hidden[:, -1])
        return self.text_encoder.text_projection(pooled).view(batch, num_classes, -1)

    def image_latents(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Scaled VAE latents (posterior means) of [-1, 1] images; the VAE is frozen. In pixel space, the images."""
        if self.vae is None:
            return pixel_values.detach().float()
        with torch.no_grad():
            posterior = self.vae.encode(pixel_values.to(self.vae.dtype)).latent_dist
            return posterior.mean * self.vae.config.scaling_factor

    def diffusion_condition(self, embeds: torch.Tensor) -> torch.Tensor:
        """The UNet cross-attention context of joint-space embeddings: `[batch, condition tokens, cross width]`."""
        return self.condition_projection(embeds).view(len(embeds), self.config.condition_num_tokens, -1)

    def inversion_condition(self, prompt_embeds: torch.Tensor) -> torch.Tensor:
        prompt = select_prompt(prompt_embeds, self.config.inversion_prompt)
        return self.diffusion_condition(functional.normalize(prompt, dim=-1))

    def invert(self, latents: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """DDIM inversion of latents to the noise map, `config.inversion_steps` steps, no guidance; no gradients."""
        self.inverse_scheduler.set_timesteps(self.config.inversion_steps)
        with torch.no_grad():
            condition = condition.to(self.unet.dtype)
            for timestep in self.inverse_scheduler.timesteps:
                noise = self.unet(latents.to(self.unet.dtype), timestep, encoder_hidden_states=condition).sample
                latents = self.inverse_scheduler.step(noise.float(), timestep, latents.float()).prev_sample
        return latents

    def invert_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The noise maps of images under the current prompts (what `forward` computes when given no noise maps)."""
        with torch.no_grad():
            prompt_embeds = self.encode_prompts(pixel_values, self.encode_image(pixel_values))
            return self.invert(self.image_latents(pixel_values), self.inversion_condition(prompt_embeds))

    def encode_noise_map(self, noise_maps: torch.Tensor) -> torch.Tensor:
        """z_n: E_d on the noise map, brought to 3 channels (1x1 conv) and to E_d's input size."""
        adapted = self.noise_map_adapter(noise_maps.to(self.noise_map_adapter.weight.dtype))
        side = self.config.noise_vision_config.image_size
        adapted = functional.interpolate(adapted, size=(side, side), mode=self.config.noise_map_upsampling)
        return self.noise_encoder(pixel_values=adapted).image_embeds

    def predict_noise(
        self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor
    ) -> torch.Tensor:
        """The frozen UNet's epsilon prediction for `sqrt(a_t) latents + sqrt(1 - a_t) noise` (Eq. 2)."""
        alphas_cumprod = self.inverse_scheduler.alphas_cumprod.to(latents.device)[timesteps].view(-1, 1, 1, 1)
        noisy = alphas_cumprod.sqrt() * latents + (1 - alphas_cumprod).sqrt() * noise.to(latents.dtype)
        dtype = self.unet.dtype
        return self.unet(noisy.to(dtype), timesteps, encoder_hidden_states=condition.to(dtype)).sample

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        noise_maps: torch.Tensor | None = None,
        reconstruction_noise: torch.Tensor | None = None,
        reconstruction_timesteps: torch.Tensor | None = None,
        **kwargs,
    ) -> SynerDetectModelOutput:
        """`noise_maps` (e.g. from a cache) skip the inversion. `reconstruction_noise` and `reconstruction_timesteps`
        (latent-shaped noise, one timestep per image) ask for the CMID prediction; `labels` select the prompt of c
        when `config.reconstruction_prompt == "label"`."""
        image_embeds = self.encode_image(pixel_values)
        prompt_embeds = self.encode_prompts(pixel_values, image_embeds)
        latents = None
        if noise_maps is None:
            latents = self.image_latents(pixel_values)
            with torch.no_grad():
                noise_maps = self.invert(latents, self.inversion_condition(prompt_embeds))
        noise_embeds = self.encode_noise_map(noise_maps)
        reconstruction_prediction = None
        if reconstruction_timesteps is not None:
            if reconstruction_noise is None:
                raise ValueError("reconstruction_timesteps need reconstruction_noise")
            latents = self.image_latents(pixel_values) if latents is None else latents
            prompt = select_prompt(prompt_embeds, self.config.reconstruction_prompt, labels)
            if not self.config.reconstruction_updates_prompt:
                prompt = prompt.detach()
            condition = functional.normalize(image_embeds, dim=-1) + functional.normalize(prompt, dim=-1)
            reconstruction_prediction = self.predict_noise(
                latents, reconstruction_noise, reconstruction_timesteps, self.diffusion_condition(condition)
            )
        return SynerDetectModelOutput(
            image_embeds=image_embeds, noise_embeds=noise_embeds, prompt_embeds=prompt_embeds, noise_maps=noise_maps,
            reconstruction_prediction=reconstruction_prediction,
        )


def matching_scores(
    image_embeds: torch.Tensor, noise_embeds: torch.Tensor, prompt_embeds: torch.Tensor
) -> torch.Tensor:
    """Eq. 10 for both classes: `s_c = cos(z_v, z_t^c) + cos(z_n, z_t^c)`, `[batch, 2]`."""
    prompts = functional.normalize(prompt_embeds, dim=-1)
    visual = torch.einsum("bd,bcd->bc", functional.normalize(image_embeds, dim=-1), prompts)
    noise = torch.einsum("bd,bcd->bc", functional.normalize(noise_embeds, dim=-1), prompts)
    return visual + noise


class SynerDetectForImageClassification(SynerDetectPreTrainedModel):
    """Two logits [real, fake] = `s / temperature`; `softmax(logits)[:, 1]` is P(fake).

    With labels, `loss` is the cross-entropy of these logits (the generic fine-tuning contract); the paper's
    objective is `aigi.losses.synerdetect_losses`, trained by `aigi train --task synerdetect`.
    """

    def __init__(self, config: SynerDetectConfig):
        super().__init__(config)
        self.synerdetect = SynerDetectModel(config)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`[batch, 2 * dim]`: the L2-normalised z_v and z_n side by side."""
        output = self.synerdetect(pixel_values)
        return torch.cat([functional.normalize(output.image_embeds, dim=-1),
                          functional.normalize(output.noise_embeds, dim=-1)], dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        noise_maps: torch.Tensor | None = None,
        reconstruction_noise: torch.Tensor | None = None,
        reconstruction_timesteps: torch.Tensor | None = None,
        **kwargs,
    ) -> SynerDetectClassifierOutput:
        output = self.synerdetect(
            pixel_values, labels=labels, noise_maps=noise_maps, reconstruction_noise=reconstruction_noise,
            reconstruction_timesteps=reconstruction_timesteps,
        )
        logits = matching_scores(output.image_embeds, output.noise_embeds, output.prompt_embeds)
        logits = logits / self.config.temperature
        loss = functional.cross_entropy(logits, labels) if labels is not None else None
        return SynerDetectClassifierOutput(
            loss=loss, logits=logits, image_embeds=output.image_embeds, noise_embeds=output.noise_embeds,
            prompt_embeds=output.prompt_embeds, noise_maps=output.noise_maps,
            reconstruction_prediction=output.reconstruction_prediction,
        )


SynerDetectConfig.register_for_auto_class()
SynerDetectForImageClassification.register_for_auto_class("AutoModelForImageClassification")
SynerDetectModel.register_for_auto_class("AutoModel")

__all__ = [
    "BayarConstrainedConv2d",
    "SynerDetectClassifierOutput",
    "SynerDetectForImageClassification",
    "SynerDetectModel",
    "SynerDetectModelOutput",
    "SynerDetectPreTrainedModel",
    "SynerDetectVisualAwareTuner",
    "matching_scores",
    "select_prompt",
]
