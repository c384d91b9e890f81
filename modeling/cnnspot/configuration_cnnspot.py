"""CNNSpot configuration (Wang et al., CVPR 2020, "CNN-generated images are surprisingly easy to spot... for now")."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

DETECTION_ID2LABEL = {0: "real", 1: "fake"}


@strict
class CNNSpotConfig(PreTrainedConfig):
    r"""
    backbone (`str`, defaults to `"resnet50"`):
        timm encoder name. The paper fine-tunes an ImageNet ResNet-50 (2048-d pooled features); any timm model
        works, e.g. a smaller `resnet18` for a from-scratch CPU run.
    backbone_pretrained (`bool`, defaults to `False`):
        Provenance flag: whether training started from ImageNet weights (the paper's setting). Loading a
        checkpoint never downloads anything; training code reads this flag when it builds a fresh encoder.
    image_size (`int`, defaults to 224):
        Side of the centre crop seen at inference (the paper's 224 crop; images are never resized).
    decision_threshold (`float`, defaults to 0.5):
        P(fake) at or above which an image is called fake.
    """

    model_type = "cnnspot"

    backbone: str = "resnet50"
    backbone_pretrained: bool = False
    image_size: int = 224
    decision_threshold: float = 0.5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
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


__all__ = ["CNNSpotConfig"]
