"""NPR configuration (Tan et al., CVPR 2024, "Rethinking the up-sampling operations in CNN-based generative network
for generalizable deepfake detection")."""

from dataclasses import field

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

DETECTION_ID2LABEL = {0: "real", 1: "fake"}


@strict
class NPRConfig(PreTrainedConfig):
    r"""
    layers (`list[int]`, defaults to `[3, 4]`):
        Bottleneck blocks in each stage. The reference network is a ResNet-50 cut after its second stage (3 and 4
        blocks); each further stage halves the resolution and doubles the width.
    width (`int`, defaults to 64):
        Channels of the stem and of the first stage's bottlenecks (their output is 4x this); ResNet-50's 64.
    image_size (`int`, defaults to 224):
        Side of the centre crop seen at inference (images are never resized: resizing destroys the residual).
    decision_threshold (`float`, defaults to 0.5):
        P(fake) at or above which an image is called fake.
    """

    model_type = "npr"

    layers: list[int] = field(default_factory=lambda: [3, 4])
    width: int = 64
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

    @property
    def feature_dim(self) -> int:
        """Channels of the last stage (bottleneck expansion 4, doubled per stage after the first): 512 by default."""
        return 4 * self.width * 2 ** (len(self.layers) - 1)

    def validate_architecture(self):
        super().validate_architecture()
        if not 0.0 <= self.decision_threshold <= 1.0:
            raise ValueError(f"decision_threshold must be in [0, 1], got {self.decision_threshold}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if not self.layers or min(self.layers) < 1:
            raise ValueError(f"layers must be a non-empty list of block counts >= 1, got {self.layers}")
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


__all__ = ["NPRConfig"]
