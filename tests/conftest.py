"""Shared pytest setup: offline, telemetry-free environment and shared fixtures."""

from __future__ import annotations

import os

# Set before any test module imports huggingface_hub, transformers or gradio.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
from bad_images import CorpusEntry, make_bad_image_corpus


@pytest.fixture(scope="session")
def bad_image_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusEntry]:
    """The broken/odd image corpus of ``tests/bad_images.py``, written once per session.

    Maps entry name to ``CorpusEntry``; treat the files as read-only.
    """
    return make_bad_image_corpus(tmp_path_factory.mktemp("bad_images"))


@pytest.fixture(scope="session")
def tiny_detector_dir(tmp_path_factory: pytest.TempPathFactory):
    """A saved tiny RescaleCL detector (random weights, 32-px crop); read-only."""
    from helpers import save_tiny_detector

    return save_tiny_detector(tmp_path_factory.mktemp("tiny_detector"))


@pytest.fixture(scope="session")
def detection_folder(tmp_path_factory: pytest.TempPathFactory):
    """`real/*.jpg` + `fake/{gen_a,gen_b}/*.png` synthetic images; read-only."""
    from helpers import write_detection_folder

    return write_detection_folder(tmp_path_factory.mktemp("detection_folder"))


@pytest.fixture(scope="module")
def single_torch_thread():
    """One intra-op thread for modules of tiny models: on a busy 2-core machine a second thread's synchronisation
    made their steps 10-100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
