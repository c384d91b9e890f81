"""RescaleCL configuration ("Generalization through discrepancy": rescaling-contrastive pre-training + Xception)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

DETECTION_ID2LABEL = {0: "real", 1: "fake"}


@strict
class RescaleCLConfig(PreTrainedConfig):
    r"""
    backbone (`str`, defaults to `"legacy_xception"`):
        timm encoder name. The paper uses Xception (timm `legacy_xception`, 2048-d pooled features).
    backbone_pretrained (`bool`, defaults to `False`):
        Provenance flag: whether training started from ImageNet weights (the paper's setting). Loading a
        checkpoint never downloads anything; training code reads this flag when it builds a fresh encoder.
    input_highpass (`bool`, defaults to `False`):
        Feed the encoder `x - mean3x3(x)` instead of `x` (a fixed, parameter-free high-pass). Not in the paper:
        the offline configuration uses it because a from-scratch encoder on a CPU budget does not find the
        interpolation traces under the image content without it.
    image_size (`int`, defaults to 256):
        Side of the centre crop seen at inference (images are never resized).
    projection_hidden_size / projection_dim (`int`):
        MLP projection head used only during rescaling-contrastive pre-training (discarded afterwards).
    classifier_dropout (`float`, defaults to 0.0):
        Dropout before the binary head.
    decision_threshold (`float`, defaults to 0.5):
        P(fake) at or above which an image is called fake.
    """

    model_type = "rescalecl"

    backbone: str = "legacy_xception"
    backbone_pretrained: bool = False
    input_highpass: bool = False
    image_size: int = 256
    projection_hidden_size: int = 2048
    projection_dim: int = 128
    classifier_dropout: float = 0.0
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


__all__ = ["RescaleCLConfig"]
