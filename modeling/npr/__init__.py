from .configuration_npr import NPRConfig
from .image_processing_npr import NPRImageProcessor
from .modeling_npr import NPRForImageClassification, NPRModel, NPRPreTrainedModel, neighboring_pixel_residual

__all__ = [
    "NPRConfig",
    "NPRForImageClassification",
    "NPRImageProcessor",
    "NPRModel",
    "NPRPreTrainedModel",
    "neighboring_pixel_residual",
]
