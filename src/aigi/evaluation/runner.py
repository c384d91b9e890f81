"""`aigi evaluate`: score a labelled dataset with a detector under one or more protocols and write the reports."""

import json
from pathlib import Path
from typing import Any

from .._deprecated import moved_names
from ..data.layouts import load_detection_records
from ..data.records import DetectionRecord
from ..data.transforms import PROTOCOLS, ROBUSTNESS_SUITE
from ..inference.distributed import is_main_process
from ..inference.pipeline import fake_score
from ..inference.scoring import load_pipeline, score_across_processes
from .report import write_report, write_robustness_report

__getattr__ = moved_names(__name__, "aigi.inference.scoring", {"iter_scores": "aigi.inference.scoring:score_stream"})

ROBUSTNESS = "robustness"


def parse_protocols(spec: str) -> list[str]:
    """Protocol names from `--protocol`: one name, a comma-separated list, or "robustness" (normalized + the suite)."""
    protocols: list[str] = []
    for name in (part.strip() for part in spec.split(",")):
        if not name:
            continue
        if name != ROBUSTNESS and name not in PROTOCOLS:
            available = ", ".join([ROBUSTNESS, *sorted(PROTOCOLS)])
            raise ValueError(f"unknown protocol {name!r}; available: {available}")
        for protocol in ("normalized", *ROBUSTNESS_SUITE) if name == ROBUSTNESS else (name,):
            if protocol not in protocols:
                protocols.append(protocol)
    if not protocols:
        raise ValueError(f"no protocol in {spec!r}")
    return protocols


def _load(model: str, data: str, split: str | None, threshold: float | None):
    """The detector's pipeline, the records of `data`, and the threshold (default: the model's)."""
    pipe = load_pipeline(model)
    if threshold is None:
        threshold = float(pipe.model.config.decision_threshold)
    return pipe, load_detection_records(data, split=split), threshold


def crop_settings(pipe, crop_options: dict[str, Any]) -> dict[str, Any]:
    """The crops an evaluation scored with: the options given (None: not given), else the image processor's."""
    defaults = {"num_crops": 1, "crop_aggregation": "mean"}
    return {name: getattr(pipe.image_processor, name, default) if crop_options[name] is None else crop_options[name]
            for name, default in defaults.items()}


def _evaluate_protocol(
    pipe, records: list[DetectionRecord], output_dir: str | Path, *, model: str, data: str, protocol: str,
    threshold: float, batch_size: int, crop_options: dict[str, Any],
) -> dict[str, Any] | None:
    outputs = score_across_processes(
        pipe, [record.image for record in records], batch_size=batch_size, protocol=protocol,
        description=f"scoring ({protocol})", **crop_options,
    )
    scored, failures = [], []
    for record, output in zip(records, outputs):
        if isinstance(output, dict):
            failures.append({"id": record.id, "error": output["error"]})
        else:
            scored.append((record, fake_score(output)))
    if not scored:
        raise ValueError(f"no image of {data} could be scored ({len(failures)} failures)")
    if not is_main_process():  # the main process of the launch writes the report
        return None
    result = write_report(
        output_dir,
        labels=[record.label for record, _ in scored],
        scores=[score for _, score in scored],
        generators=[record.generator for record, _ in scored],
        threshold=threshold,
        title=f"{model} on {data} ({protocol})",
        ids=[record.id for record, _ in scored],
        settings=crop_settings(pipe, crop_options),
    )
    result.update({"model": model, "data": data, "protocol": protocol, "failures": failures})
    (Path(output_dir) / "failures.json").write_text(json.dumps(failures, indent=2))
    return result


def evaluate_detector(
    model: str,
    data: str,
    output_dir: str,
    *,
    protocol: str = "normalized",
    threshold: float | None = None,
    batch_size: int = 32,
    split: str | None = None,
    num_crops: int | None = None,
    crop_aggregation: str | None = None,
) -> dict[str, Any] | None:
    """Per-generator and pooled metrics of `model` on `data`; writes metrics.json, metrics.md, plots, predictions.
    `num_crops` / `crop_aggregation` override the image processor's. Under `accelerate launch` the processes share
    the scoring, and only the main process writes and returns the report (None elsewhere)."""
    pipe, records, threshold = _load(model, data, split, threshold)
    return _evaluate_protocol(
        pipe, records, output_dir, model=model, data=data, protocol=protocol, threshold=threshold,
        batch_size=batch_size, crop_options={"num_crops": num_crops, "crop_aggregation": crop_aggregation},
    )


def evaluate_robustness(
    model: str,
    data: str,
    output_dir: str,
    *,
    protocols: list[str],
    threshold: float | None = None,
    batch_size: int = 32,
    split: str | None = None,
    num_crops: int | None = None,
    crop_aggregation: str | None = None,
) -> dict[str, Any] | None:
    """`evaluate_detector` under each protocol into `output_dir/<protocol>/`, then robustness.json, robustness.md
    and robustness.png in `output_dir`. Returns `{"results": {protocol: result}, "summary": robustness summary}`
    (None on the other processes of an `accelerate launch`)."""
    pipe, records, threshold = _load(model, data, split, threshold)
    results = {
        protocol: _evaluate_protocol(
            pipe, records, Path(output_dir) / protocol, model=model, data=data, protocol=protocol,
            threshold=threshold, batch_size=batch_size,
            crop_options={"num_crops": num_crops, "crop_aggregation": crop_aggregation},
        )
        for protocol in protocols
    }
    if not is_main_process():
        return None
    summary = write_robustness_report(output_dir, results, title=f"{model} on {data}: robustness")
    return {"results": results, "summary": summary}
