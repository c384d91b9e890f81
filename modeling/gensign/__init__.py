from .configuration_gensign import GenSignConfig
from .image_processing_gensign import GenSignImageProcessor
from .modeling_gensign import (
    GenSignForImageClassification,
    GenSignModel,
    GenSignPreTrainedModel,
    GenSignSignatureExtractor,
    gensign_signature,
)

__all__ = [
    "GenSignConfig",
    "GenSignForImageClassification",
    "GenSignImageProcessor",
    "GenSignModel",
    "GenSignPreTrainedModel",
    "GenSignSignatureExtractor",
    "gensign_signature",
]
