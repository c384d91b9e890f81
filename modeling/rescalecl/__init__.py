from .configuration_rescalecl import RescaleCLConfig
from .image_processing_rescalecl import RescaleCLImageProcessor
from .modeling_rescalecl import RescaleCLForImageClassification, RescaleCLModel, RescaleCLPreTrainedModel

__all__ = [
    "RescaleCLConfig",
    "RescaleCLForImageClassification",
    "RescaleCLImageProcessor",
    "RescaleCLModel",
    "RescaleCLPreTrainedModel",
]
