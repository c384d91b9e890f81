"""`aigi evaluate`: score a labelled dataset with a detector under a protocol and write the report."""

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..data.sources import load_detection_records
from ..pipeline import fake_score
from .report import write_report


def score_sources(
    pipe, sources: list, *, batch_size: int, protocol: str = "raw", threshold: float | None = None,
    description: str = "scoring",
):
    """Run the `ai-image-detection` pipeline over `sources` with a progress bar; one output per source, in order."""
    outputs = pipe(
        (source for source in sources), batch_size=batch_size, protocol=protocol, threshold=threshold,
        on_error="report",
    )
    return [output for output in tqdm(outputs, total=len(sources), desc=description, unit="img")]


def evaluate_detector(
    model: str,
    data: str,
    output_dir: str,
    *,
    protocol: str = "normalized",
    threshold: float | None = None,
    batch_size: int = 32,
    split: str | None = None,
) -> dict[str, Any]:
    """Per-generator and pooled metrics of `model` on `data`; writes metrics.json, metrics.md, plots, predictions."""
    from transformers import pipeline

    from ..registry import resolve_model

    pipe = pipeline("ai-image-detection", model=resolve_model(model))
    if threshold is None:
        threshold = float(pipe.model.config.decision_threshold)
    records = load_detection_records(data, split=split)
    outputs = score_sources(pipe, [record.image for record in records], batch_size=batch_size, protocol=protocol)
    scored, failures = [], []
    for record, output in zip(records, outputs):
        if isinstance(output, dict):
            failures.append({"id": record.id, "error": output["error"]})
        else:
            scored.append((record, fake_score(output)))
    if not scored:
        raise ValueError(f"no image of {data} could be scored ({len(failures)} failures)")
    result = write_report(
        output_dir,
        labels=[record.label for record, _ in scored],
        scores=[score for _, score in scored],
        generators=[record.generator for record, _ in scored],
        threshold=threshold,
        title=f"{model} on {data} ({protocol})",
        ids=[record.id for record, _ in scored],
    )
    result.update({"model": model, "data": data, "protocol": protocol, "failures": failures})
    (Path(output_dir) / "failures.json").write_text(json.dumps(failures, indent=2))
    return result
