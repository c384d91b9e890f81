"""aigi: tell real photographs from AI-generated images with research detectors packaged as HF models.

Importing aigi registers every detector family with the transformers Auto classes and the
`ai-image-detection` pipeline task.
"""

from .inference.pipeline import AIImageDetectionPipeline, register_pipeline_task
from .registry import FAMILIES, bundled_checkpoints, register_families, resolve_model

__version__ = "0.1.0"

register_families()
register_pipeline_task()

__all__ = ["AIImageDetectionPipeline", "FAMILIES", "bundled_checkpoints", "resolve_model"]
