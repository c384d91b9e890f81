"""`aigi detect --output` streams the same rows as the printed output, in order, error rows included."""

import csv
import json

import pytest
from helpers import write_mixed_folder

from aigi.cli import main
from aigi.data.layouts import iter_detection_records


@pytest.fixture()
def mixed_folder(bad_image_corpus, detection_folder, tmp_path):
    return write_mixed_folder(tmp_path / "mixed", bad_image_corpus, detection_folder, good_count=6)


def printed_json_rows(folder, model, capsys):
    assert main(["detect", str(folder), "--model", str(model), "--json", "--batch-size", "4"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("num_workers", ["0", "2"])
def test_jsonl_output_matches_printed_rows(tiny_detector_dir, mixed_folder, tmp_path, capsys, num_workers):
    expected = printed_json_rows(mixed_folder, tiny_detector_dir, capsys)
    output = tmp_path / "rows.jsonl"
    assert main(["detect", str(mixed_folder), "--model", str(tiny_detector_dir), "--batch-size", "4",
                 "--num-workers", num_workers, "--output", str(output)]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert rows == expected
    assert any(row["error"] for row in rows) and any(row["score"] is not None for row in rows)
    assert f"{len(rows)} rows" in capsys.readouterr().out


def test_csv_output_matches_printed_csv(tiny_detector_dir, mixed_folder, tmp_path, capsys):
    assert main(["detect", str(mixed_folder), "--model", str(tiny_detector_dir), "--csv"]) == 0
    expected = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    output = tmp_path / "rows.csv"
    assert main(["detect", str(mixed_folder), "--model", str(tiny_detector_dir), "--output", str(output)]) == 0
    with output.open(newline="") as rows_file:
        assert list(csv.DictReader(rows_file)) == expected


def test_data_records_are_streamed_in_order(tiny_detector_dir, detection_folder, tmp_path):
    output = tmp_path / "rows.jsonl"
    assert main(["detect", "--data", str(detection_folder), "--model", str(tiny_detector_dir), "--output",
                 str(output), "--batch-size", "3"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    records = list(iter_detection_records(detection_folder))
    assert [row["id"] for row in rows] == [record.id for record in records]
    assert [row["generator"] for row in rows] == [record.generator for record in records]
    assert {row["true_label"] for row in rows} == {"real", "fake"}
    assert all(row["error"] is None and 0.0 <= row["score"] <= 1.0 for row in rows)


@pytest.mark.parametrize("arguments, message", [
    (["--data", "DATA"], "--output"),
    (["--data", "DATA", "--output", "rows.txt"], ".jsonl"),
    (["FOLDER", "--data", "DATA", "--output", "rows.csv"], "not both"),
])
def test_streaming_argument_errors(tiny_detector_dir, detection_folder, tmp_path, capsys, arguments, message):
    arguments = [str(detection_folder) if argument in ("DATA", "FOLDER") else argument for argument in arguments]
    arguments = [str(tmp_path / argument) if argument.startswith("rows.") else argument for argument in arguments]
    assert main(["detect", "--model", str(tiny_detector_dir), *arguments]) == 2
    assert message in capsys.readouterr().err
