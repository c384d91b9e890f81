from .configuration_synerdetect import SynerDetectConfig
from .image_processing_synerdetect import SynerDetectImageProcessor
from .modeling_synerdetect import (
    BayarConstrainedConv2d,
    SynerDetectClassifierOutput,
    SynerDetectForImageClassification,
    SynerDetectModel,
    SynerDetectModelOutput,
    SynerDetectPreTrainedModel,
    SynerDetectVisualAwareTuner,
    matching_scores,
    select_prompt,
)

__all__ = [
    "BayarConstrainedConv2d",
    "SynerDetectClassifierOutput",
    "SynerDetectConfig",
    "SynerDetectForImageClassification",
    "SynerDetectImageProcessor",
    "SynerDetectModel",
    "SynerDetectModelOutput",
    "SynerDetectPreTrainedModel",
    "SynerDetectVisualAwareTuner",
    "matching_scores",
    "select_prompt",
]
