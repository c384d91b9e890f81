"""GenSign configuration ("Enabling Supervised Learning of Generative Signatures", CVPR 2026)."""

from dataclasses import field

from huggingface_hub.dataclasses import strict
from transformers import CLIPVisionConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

DETECTION_ID2LABEL = {0: "real", 1: "fake"}
CLIP_IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
# openai/clip-vit-large-patch14, vision tower only: the RGB stream of the paper.
CLIP_VIT_LARGE_PATCH14 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
}


@strict
class GenSignConfig(PreTrainedConfig):
    r"""
    A dual-stream detector: an RGB stream and a "generative signature" stream whose input is the residual predicted
    by a frozen signature extractor; their pooled features are concatenated and classified by an MLP head.

    Inputs are images normalised to [-1, 1] (the image processor's mean = std = 0.5, as in the reference code); the
    RGB stream re-normalises them with `rgb_image_mean` / `rgb_image_std` itself.

    The defaults are the paper's configuration (CLIP ViT-L/14 with LoRA + EfficientNet-B0, 2304-d fused features).
    A from-scratch configuration that trains on a CPU is e.g.
    `GenSignConfig(rgb_backbone="resnet10t", rgb_image_mean=[0.5] * 3, rgb_image_std=[0.5] * 3)`.

    rgb_backbone (`str`, defaults to `"clip"`):
        `"clip"`: a transformers `CLIPVisionModel` built from `rgb_vision_config`, frozen except for LoRA adapters
        (and the biases of the adapted projections) on `q_proj`, `k_proj`, `v_proj` and `out_proj`; its feature is
        the post-LayerNorm CLS token (`pooler_output`, 1024-d for ViT-L/14), computed on the centre
        `rgb_vision_config.image_size` crop of the input. Any other value is a timm model name, trained in full on
        the whole input.
    rgb_vision_config (`dict` or `CLIPVisionConfig`, *optional*):
        The CLIP vision tower; defaults to openai/clip-vit-large-patch14's when `rgb_backbone="clip"`. Must be unset
        for a timm RGB backbone.
    rgb_lora_rank / rgb_lora_alpha / rgb_lora_dropout:
        LoRA rank, scale numerator (scale = alpha / rank) and dropout of the CLIP adapters (paper: 4, 4, 0.1).
    rgb_lora_merged (`bool`, defaults to `False`):
        Whether the LoRA deltas are already added into the saved projection weights. It is written by
        `save_pretrained` from the model's actual state, so that loading never adds a delta a second time.
    rgb_image_mean / rgb_image_std (`list[float]`):
        Normalisation the RGB backbone expects (CLIP's by default).
    signature_backbone (`str`, defaults to `"efficientnet_b0"`):
        timm model that classifies the signature (1280-d features for EfficientNet-B0), trained in full. The
        reference's lukemelas EfficientNet-B0 has timm's `tf_efficientnet_b0` layout.
    signature_extractor_width / signature_extractor_blocks (`int`, defaults to 64 / 8):
        Width and number of residual blocks of the frozen fully convolutional signature extractor.
    use_signature_stream (`bool`, defaults to `True`):
        `False` drops the signature extractor and backbone (the "RGB stream only" ablation): the head then sees the
        RGB features alone.
    signature_fractional_wrap (`bool`, defaults to `True`):
        Feed the signature backbone `r - floor(r)` instead of the extractor's residual `r` (reference code; not
        described in the paper). Residuals are small (about +-0.05 in [-1, 1] units), so positive values stay near 0
        and negative values wrap to just below 1: the sign of each residual becomes a large, discontinuous jump.
        Checkpoints trained with the wrap must keep it.
    head_hidden_size (`int`, defaults to 256):
        Hidden width of the fusion MLP (Linear -> LeakyReLU(0.2) -> Linear to two logits [real, fake]).
    image_size (`int`, defaults to 256):
        Side of the centre crop seen at inference (images are never resized).
    decision_threshold (`float`, defaults to 0.5):
        P(fake) at or above which an image is called fake.
    """

    model_type = "gensign"
    sub_configs_defaults = {"rgb_vision_config": SubConfigSpec(config_class=CLIPVisionConfig, optional=True)}

    rgb_backbone: str = "clip"
    rgb_vision_config: dict | CLIPVisionConfig | None = None
    rgb_lora_rank: int = 4
    rgb_lora_alpha: int = 4
    rgb_lora_dropout: float = 0.1
    rgb_lora_merged: bool = False
    rgb_image_mean: list[float] = field(default_factory=lambda: list(CLIP_IMAGE_MEAN))
    rgb_image_std: list[float] = field(default_factory=lambda: list(CLIP_IMAGE_STD))
    use_signature_stream: bool = True
    signature_backbone: str = "efficientnet_b0"
    signature_extractor_width: int = 64
    signature_extractor_blocks: int = 8
    signature_fractional_wrap: bool = True
    head_hidden_size: int = 256
    image_size: int = 256
    decision_threshold: float = 0.5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.rgb_backbone == "clip" and self.rgb_vision_config is None:
            self.rgb_vision_config = dict(CLIP_VIT_LARGE_PATCH14)
        if self.id2label is None:
            self.id2label = dict(DETECTION_ID2LABEL)
        self.id2label = {int(index): name for index, name in self.id2label.items()}
        if self.label2id is None:
            self.label2id = {name: index for index, name in self.id2label.items()}
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        super().validate_architecture()
        if not 0.0 <= self.decision_threshold <= 1.0:
            raise ValueError(f"decision_threshold must be in [0, 1], got {self.decision_threshold}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if self.rgb_backbone != "clip" and self.rgb_vision_config is not None:
            raise ValueError(f"rgb_vision_config is only used with rgb_backbone='clip', not {self.rgb_backbone!r}")
        if self.rgb_backbone == "clip" and self.rgb_vision_config.image_size > self.image_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be at least the CLIP input size "
                f"({self.rgb_vision_config.image_size}): the RGB stream sees a centre crop of the input"
            )
        if len(self.rgb_image_mean) != 3 or len(self.rgb_image_std) != 3:
            raise ValueError("rgb_image_mean and rgb_image_std need one value per RGB channel")
        if not 0.0 <= self.rgb_lora_dropout < 1.0:
            raise ValueError(f"rgb_lora_dropout must be in [0, 1), got {self.rgb_lora_dropout}")
        for name in ("rgb_lora_rank", "signature_extractor_width", "signature_extractor_blocks", "head_hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


__all__ = ["GenSignConfig"]
