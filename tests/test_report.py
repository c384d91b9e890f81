"""Report tests: files written, JSON shape, table formatting."""

import csv
import json
from pathlib import Path

import pytest

from aigi.evaluation.metrics import METRIC_KEYS, grouped_metrics
from aigi.evaluation.report import format_markdown_table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = [0, 0, 0, 1, 1, 1, 1]
SCORES = [0.1, 0.2, 0.6, 0.7, 0.8, 0.15, 0.9]
GENERATORS = ["real", None, "", "sdxl", "sdxl", "dalle3", "dalle3"]
IDS = [f"img{index}.png" for index in range(len(LABELS))]
METRIC_DICT_KEYS = [*METRIC_KEYS, "n_real", "n_fake"]


def _strict_json(path: Path) -> dict:
    def reject(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    output_dir = tmp_path / "nested" / "report"
    result = write_report(
        output_dir, LABELS, SCORES, GENERATORS, threshold=0.5, title="toy", ids=IDS
    )

    written = _strict_json(output_dir / "metrics.json")
    assert written == result
    assert list(written) == ["pooled", "per_generator", "threshold"]
    assert written["threshold"] == 0.5
    assert list(written["pooled"]) == METRIC_DICT_KEYS
    assert list(written["per_generator"]) == ["dalle3", "sdxl"]
    assert all(list(entry) == METRIC_DICT_KEYS for entry in written["per_generator"].values())
    expected = grouped_metrics(LABELS, SCORES, GENERATORS, threshold=0.5)
    assert written["pooled"] == expected["pooled"]
    assert written["per_generator"] == expected["per_generator"]

    for name in ("roc.png", "score_histogram.png"):
        image = (output_dir / name).read_bytes()
        assert len(image) > len(PNG_MAGIC)
        assert image.startswith(PNG_MAGIC), name

    markdown = (output_dir / "metrics.md").read_text(encoding="utf-8")
    assert markdown.startswith("# toy\n")
    assert format_markdown_table(result) in markdown

    with (output_dir / "predictions.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "index", "label", "generator", "score"]
    assert rows[1] == ["img0.png", "0", "0", "real", "0.1"]
    assert rows[2][3] == "real"  # None is written as "real"
    assert rows[4] == ["img3.png", "3", "1", "sdxl", "0.7"]
    assert len(rows) == 1 + len(LABELS)


def test_predictions_without_ids(tmp_path: Path) -> None:
    write_report(tmp_path, LABELS, SCORES, GENERATORS)
    with (tmp_path / "predictions.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["index", "label", "generator", "score"]
    assert rows[-1] == ["6", "1", "dalle3", "0.9"]


def test_report_with_one_class_writes_nulls(tmp_path: Path) -> None:
    result = write_report(tmp_path, [1, 1], [0.3, 0.9], ["sdxl", "sdxl"])
    written = _strict_json(tmp_path / "metrics.json")
    assert written == result
    assert written["pooled"]["auroc"] is None
    assert written["per_generator"]["sdxl"]["real_acc"] is None
    assert "| sdxl | 2 | – | – | 0.500 | – | 0.500 | – | – |" in (tmp_path / "metrics.md").read_text(
        encoding="utf-8"
    )
    assert (tmp_path / "roc.png").read_bytes().startswith(PNG_MAGIC)


def test_report_with_many_generators(tmp_path: Path) -> None:
    generators = ["real"] * 2 + [f"gen{index}" for index in range(8)]
    scores = [0.1, 0.3] + [0.05 * index + 0.5 for index in range(8)]
    result = write_report(tmp_path, [0, 0] + [1] * 8, scores, generators)
    assert len(result["per_generator"]) == 8
    assert (tmp_path / "score_histogram.png").read_bytes().startswith(PNG_MAGIC)


def test_mismatched_ids_raise_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ids"):
        write_report(tmp_path / "out", LABELS, SCORES, GENERATORS, ids=IDS[:-1])
    assert not (tmp_path / "out").exists()


def test_format_markdown_table() -> None:
    metrics = {
        "auroc": 0.98765,
        "ap": 1.0,
        "acc": 0.5,
        "real_acc": None,
        "fake_acc": 0.25,
        "tpr_at_5fpr": 0.1234,
        "eer": 0.0,
        "ece": 0.04321,
        "n": 12,
        "n_real": 0,
        "n_fake": 12,
    }
    table = format_markdown_table({"pooled": metrics, "per_generator": {"a|b": metrics}})
    assert table == (
        "| generator | n | AUROC | AP | Acc | real-acc | fake-acc | TPR@5%FPR | EER | ECE |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| a\\|b | 12 | 0.988 | 1.000 | 0.500 | – | 0.250 | 0.123 | 0.000 | 0.043 |\n"
        "| pooled | 12 | 0.988 | 1.000 | 0.500 | – | 0.250 | 0.123 | 0.000 | 0.043 |"
    )
