"""Shared pytest setup: offline, telemetry-free environment and shared fixtures."""

from __future__ import annotations

import os

# Set before any test module imports huggingface_hub, transformers or gradio.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

from bad_images import CorpusEntry, make_bad_image_corpus  # noqa: E402


@pytest.fixture(scope="session")
def bad_image_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusEntry]:
    """The broken/odd image corpus of ``tests/bad_images.py``, written once per session.

    Maps entry name to ``CorpusEntry``; treat the files as read-only.
    """
    return make_bad_image_corpus(tmp_path_factory.mktemp("bad_images"))
