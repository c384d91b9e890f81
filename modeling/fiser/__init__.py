from .configuration_fiser import FiSeRConfig
from .image_processing_fiser import FiSeRImageProcessor
from .modeling_fiser import FiSeRForImageClassification, FiSeRModel, FiSeRPreTrainedModel, top_k_similarities

__all__ = [
    "FiSeRConfig",
    "FiSeRForImageClassification",
    "FiSeRImageProcessor",
    "FiSeRModel",
    "FiSeRPreTrainedModel",
    "top_k_similarities",
]
