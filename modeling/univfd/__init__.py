from .configuration_univfd import UnivFDConfig, clip_vision_config
from .image_processing_univfd import UnivFDImageProcessor
from .modeling_univfd import UnivFDForImageClassification, UnivFDModel, UnivFDPreTrainedModel

__all__ = [
    "UnivFDConfig",
    "UnivFDForImageClassification",
    "UnivFDImageProcessor",
    "UnivFDModel",
    "UnivFDPreTrainedModel",
    "clip_vision_config",
]
