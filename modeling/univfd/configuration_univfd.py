"""UnivFD configuration (Ojha et al., CVPR 2023, "Towards Universal Fake Image Detectors that Generalize Across
Generative Models")."""

from huggingface_hub.dataclasses import strict
from transformers import CLIPConfig, CLIPVisionConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

DETECTION_ID2LABEL = {0: "real", 1: "fake"}
# openai/clip-vit-large-patch14, the backbone of the paper.
CLIP_VIT_LARGE_PATCH14_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
}


def clip_vision_config(config: CLIPConfig | CLIPVisionConfig) -> dict:
    """The vision tower configuration of a transformers `CLIPModel` or `CLIPVisionModelWithProjection` checkpoint."""
    if isinstance(config, CLIPVisionConfig):
        return config.to_dict()
    # CLIPModel sizes its visual projection by its top-level projection_dim, whatever the vision config says.
    return {**config.vision_config.to_dict(), "projection_dim": config.projection_dim}


@strict
class UnivFDConfig(PreTrainedConfig):
    r"""
    vision_config (`dict` or `CLIPVisionConfig`, defaults to CLIP ViT-L/14 at 224):
        The frozen CLIP vision tower and its visual projection; the projected image embedding (768-d for ViT-L/14)
        is the feature the linear probe reads.
    image_size (`int`, defaults to 224):
        Side of the centre crop seen at inference (images are never resized). Must equal `vision_config.image_size`:
        the tower's position embeddings are fixed to it.
    decision_threshold (`float`, defaults to 0.5):
        P(fake) at or above which an image is called fake.
    """

    model_type = "univfd"
    sub_configs_defaults = {"vision_config": SubConfigSpec(config_class=CLIPVisionConfig)}

    vision_config: dict | CLIPVisionConfig | None = None
    image_size: int = 224
    decision_threshold: float = 0.5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.vision_config is None:
            self.vision_config = dict(CLIP_VIT_LARGE_PATCH14_VISION)
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
        if self.image_size != self.vision_config.image_size:
            raise ValueError(
                f"image_size ({self.image_size}) must equal the CLIP tower's input size "
                f"({self.vision_config.image_size})"
            )


__all__ = ["UnivFDConfig", "clip_vision_config"]
