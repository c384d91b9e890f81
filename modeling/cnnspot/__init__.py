from .configuration_cnnspot import CNNSpotConfig
from .image_processing_cnnspot import CNNSpotImageProcessor
from .modeling_cnnspot import CNNSpotForImageClassification, CNNSpotModel, CNNSpotPreTrainedModel

__all__ = [
    "CNNSpotConfig",
    "CNNSpotForImageClassification",
    "CNNSpotImageProcessor",
    "CNNSpotModel",
    "CNNSpotPreTrainedModel",
]
