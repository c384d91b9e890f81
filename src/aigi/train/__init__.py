"""Training: `aigi train ...` or `accelerate launch -m aigi.train ...`."""

from .args import TrainingArguments, parse_training_arguments
from .loop import main, train

__all__ = ["TrainingArguments", "main", "parse_training_arguments", "train"]
