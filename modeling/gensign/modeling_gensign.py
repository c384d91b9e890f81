"""GenSign detector: an RGB stream and a generative-signature stream, fused by an MLP head.

The signature is the residual `r = E_sig(I)` of a frozen fully convolutional extractor, trained beforehand to
regress `I - DAIR(I)`, the traces a randomly re-wired reconstructor (DAIR) leaves on real photos (training code in
`aigi.dair`). A timm backbone classifies `r` (or its fractional wrap, see `GenSignConfig`), CLIP with LoRA (or a timm
backbone) classifies the image itself, and the concatenated features go through a two-layer head.
"""

import math

import numpy as np
import timm
import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from PIL import Image
from torch import nn
from transformers import CLIPVisionModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from .configuration_gensign import GenSignConfig

CLIP_LORA_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj"]
LORA_ADAPTER_NAME = "default"
NO_SIGNATURE_STREAM = "this GenSign model has no signature stream (use_signature_stream=False)"


def add_clip_lora(vision_model: CLIPVisionModel, config: GenSignConfig) -> None:
    """Add LoRA adapters to the attention projections of the CLIP tower."""
    lora_config = LoraConfig(
        r=config.rgb_lora_rank,
        lora_alpha=config.rgb_lora_alpha,
        lora_dropout=config.rgb_lora_dropout,
        target_modules=CLIP_LORA_TARGET_MODULES,
    )
    inject_adapter_in_model(lora_config, vision_model, adapter_name=LORA_ADAPTER_NAME)
    for layer in lora_layers(vision_model):
        # peft has initialised the adapters (B = 0); the transformers init pass must not draw them again.
        for module in layer.modules():
            module._is_hf_initialized = True
        if config.rgb_lora_merged:
            # The weights about to be loaded already contain the delta: record it instead of adding it.
            layer.merged_adapters = [LORA_ADAPTER_NAME]


def lora_layers(module: nn.Module) -> list[LoraLayer]:
    return [child for child in module.modules() if isinstance(child, LoraLayer)]


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return images[..., top : top + size, left : left + size]


class GenSignResidualBlock(nn.Module):
    def __init__(self, width: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        residual = self.norm2(self.conv2(nn.functional.gelu(self.norm1(self.conv1(hidden)))))
        return nn.functional.gelu(hidden + residual)


class GenSignSignatureExtractor(nn.Module):
    """Fully convolutional, full-resolution regressor of the DAIR residual `I - DAIR(I)`.

    Input and target are in the detector's input units ([-1, 1]), so a target computed by `aigi.dair.DAIR` on
    [0, 1] images is `2 * (images - dair(images))`. Conv 3 -> width, residual blocks (conv-GN-GELU-conv-GN + skip),
    conv width -> 3; no global skip. 596,547 parameters at width 64 with 8 blocks.
    """

    def __init__(self, width: int = 64, num_blocks: int = 8):
        super().__init__()
        groups = math.gcd(16, width)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(groups, width), nn.GELU())
        self.blocks = nn.Sequential(*[GenSignResidualBlock(width, groups) for _ in range(num_blocks)])
        self.output = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.output(self.blocks(self.stem(pixel_values)))


class GenSignPreTrainedModel(PreTrainedModel):
    config: GenSignConfig
    config_class = GenSignConfig
    base_model_prefix = "gensign"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        # Convolutions and norms keep their own initialisation (timm's, PyTorch's); CLIP initialises itself.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # Loading replaces every floating-point parameter with a trainable one: freeze the fixed parts again.
        getattr(model, model.base_model_prefix, model).freeze_fixed_parameters()
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        merged_states = {layer.merged for layer in lora_layers(self)}
        if len(merged_states) > 1:
            raise ValueError("some LoRA adapters are merged and others are not: merge or unmerge all before saving")
        if merged_states:
            self.config.rgb_lora_merged = merged_states.pop()
        # `register_for_auto_class` keeps one auto class per model class; list the base model too.
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": "configuration_gensign.GenSignConfig",
                "AutoModel": "modeling_gensign.GenSignModel",
                "AutoModelForImageClassification": "modeling_gensign.GenSignForImageClassification",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)


class GenSignModel(GenSignPreTrainedModel):
    """Both streams: `pooler_output` is `concat(rgb features, signature features)`.

    `last_hidden_state` is the RGB stream's (CLIP tokens or a timm feature map); with `output_hidden_states`,
    `hidden_states` is `(rgb last hidden state, signature backbone feature map)`. Without the signature stream
    (`use_signature_stream=False`) the pooled output is the RGB features and `hidden_states` has the RGB entry only.
    """

    def __init__(self, config: GenSignConfig):
        super().__init__(config)
        if config.rgb_backbone == "clip":
            self.rgb_backbone = CLIPVisionModel(config.rgb_vision_config)
            add_clip_lora(self.rgb_backbone, config)
            self.rgb_feature_dim = config.rgb_vision_config.hidden_size
        else:
            self.rgb_backbone = timm.create_model(config.rgb_backbone, pretrained=False, num_classes=0)
            self.rgb_feature_dim = self.rgb_backbone.num_features
        if config.use_signature_stream:
            self.signature_extractor = GenSignSignatureExtractor(
                config.signature_extractor_width, config.signature_extractor_blocks
            )
            self.signature_backbone = timm.create_model(config.signature_backbone, pretrained=False, num_classes=0)
        else:
            self.signature_extractor = self.signature_backbone = None
        self.freeze_fixed_parameters()
        self.post_init()

    @property
    def feature_dim(self) -> int:
        if self.signature_backbone is None:
            return self.rgb_feature_dim
        return self.rgb_feature_dim + self.signature_backbone.num_features

    def freeze_fixed_parameters(self) -> None:
        """Freeze the signature extractor and, for CLIP, the tower except its LoRA adapters and the biases of the
        adapted projections (the reference's trainable set: loralib with `bias="lora_only"`)."""
        if self.signature_extractor is not None:
            self.signature_extractor.requires_grad_(False)
        if self.config.rgb_backbone == "clip":
            self.rgb_backbone.requires_grad_(False)
            for layer in lora_layers(self.rgb_backbone):
                layer.lora_A.requires_grad_(True)
                layer.lora_B.requires_grad_(True)
                layer.base_layer.bias.requires_grad_(True)

    def merge_rgb_lora(self) -> None:
        """Add the LoRA deltas into the CLIP projections (faster inference; adapters stop training)."""
        for layer in lora_layers(self):
            if not layer.merged:
                layer.merge()
        self.config.rgb_lora_merged = True

    def unmerge_rgb_lora(self) -> None:
        for layer in lora_layers(self):
            if layer.merged:
                layer.unmerge()
        self.config.rgb_lora_merged = False

    def load_clip_weights(self, clip_state_dict: dict[str, torch.Tensor]) -> None:
        """Load a plain `CLIPVisionModel` state dict (e.g. openai/clip-vit-large-patch14) into the adapted tower."""
        if self.config.rgb_backbone != "clip" or self.config.rgb_lora_merged:
            raise ValueError("CLIP weights can only be loaded into an unmerged CLIP RGB stream")
        # The adapted projections keep the original weights under `<projection>.base_layer`.
        names = [name for name in self.rgb_backbone.state_dict() if "lora_" not in name]
        missing = [name for name in names if name.replace(".base_layer.", ".") not in clip_state_dict]
        if missing:
            raise ValueError(f"the CLIP state dict lacks {len(missing)} weights, e.g. {missing[:3]}")
        weights = {name: clip_state_dict[name.replace(".base_layer.", ".")] for name in names}
        self.rgb_backbone.load_state_dict(weights, strict=False)

    def signature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The input of the signature backbone: the frozen extractor's residual, fractionally wrapped if configured."""
        if self.signature_extractor is None:
            raise ValueError(NO_SIGNATURE_STREAM)
        with torch.no_grad():
            residual = self.signature_extractor(pixel_values)
        if self.config.signature_fractional_wrap:
            return residual - torch.floor(residual)
        return residual

    def rgb_stream(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(last hidden state, pooled features) of the RGB backbone."""
        mean = pixel_values.new_tensor(self.config.rgb_image_mean).view(1, 3, 1, 1)
        std = pixel_values.new_tensor(self.config.rgb_image_std).view(1, 3, 1, 1)
        rgb = (pixel_values * 0.5 + 0.5 - mean) / std
        if self.config.rgb_backbone == "clip":
            encoded = self.rgb_backbone(pixel_values=centre_crop(rgb, self.config.rgb_vision_config.image_size))
            return encoded.last_hidden_state, encoded.pooler_output
        feature_map = self.rgb_backbone.forward_features(rgb)
        return feature_map, self.rgb_backbone.forward_head(feature_map, pre_logits=True)

    def forward(
        self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None, **kwargs
    ) -> BaseModelOutputWithPooling:
        rgb_hidden_state, rgb_features = self.rgb_stream(pixel_values)
        if self.signature_backbone is None:
            pooled, hidden_states = rgb_features, (rgb_hidden_state,)
        else:
            signature_map = self.signature_backbone.forward_features(self.signature(pixel_values))
            signature_features = self.signature_backbone.forward_head(signature_map, pre_logits=True)
            pooled = torch.cat([rgb_features, signature_features], dim=-1)
            hidden_states = (rgb_hidden_state, signature_map)
        return BaseModelOutputWithPooling(
            last_hidden_state=rgb_hidden_state,
            pooler_output=pooled,
            hidden_states=hidden_states if output_hidden_states else None,
        )


class GenSignForImageClassification(GenSignPreTrainedModel):
    """Two logits [real, fake]; `softmax(logits)[:, 1]` is P(fake). The signature extractor stays frozen."""

    def __init__(self, config: GenSignConfig):
        super().__init__(config)
        self.gensign = GenSignModel(config)
        self.classifier = nn.Sequential(
            nn.Linear(self.gensign.feature_dim, config.head_hidden_size),
            nn.LeakyReLU(0.2),
            nn.Linear(config.head_hidden_size, config.num_labels),
        )
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Fused features `[batch, rgb_dim + signature_dim]` (input of the head; used by few-shot heads)."""
        return self.gensign(pixel_values).pooler_output

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        encoded = self.gensign(pixel_values, output_hidden_states=output_hidden_states)
        logits = self.classifier(encoded.pooler_output)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)


def gensign_signature(model: GenSignPreTrainedModel, image: Image.Image) -> Image.Image:
    """The extractor's residual of a whole image (any size, never resized) as a picture for a demo.

    Shows `|r|` per RGB channel before any fractional wrap, scaled so that its 99.5th percentile is white: real photos
    tend to give unstructured noise, generated images coherent patches.
    """
    extractor = getattr(model, model.base_model_prefix, model).signature_extractor
    if extractor is None:
        raise ValueError(NO_SIGNATURE_STREAM)
    parameter = next(extractor.parameters())
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    with torch.no_grad():
        residual = extractor(pixels.to(device=parameter.device, dtype=parameter.dtype))
    magnitude = residual[0].abs().float().permute(1, 2, 0).cpu().numpy()
    scale = max(float(np.percentile(magnitude, 99.5)), 1e-8)
    return Image.fromarray(np.round(np.clip(magnitude / scale, 0.0, 1.0) * 255).astype(np.uint8))


GenSignConfig.register_for_auto_class()
GenSignForImageClassification.register_for_auto_class("AutoModelForImageClassification")
GenSignModel.register_for_auto_class("AutoModel")

__all__ = [
    "GenSignPreTrainedModel",
    "GenSignModel",
    "GenSignForImageClassification",
    "GenSignSignatureExtractor",
    "gensign_signature",
]
