
import pytest
from transformers import pipeline

import aigi  # noqa: F401  (registers the task)
from aigi.inference.pipeline import fake_score
from detector_tester import load_without_aigi, random_image


@pytest.fixture(scope="module")
def detector(tiny_detector_dir):
    return pipeline("ai-image-detection", model=str(tiny_detector_dir))


def test_single_image_output_format(detector):
    output = detector(random_image(40, 40))
    assert [entry["label"] for entry in output] in (["fake", "real"], ["real", "fake"])
    assert output[0]["score"] >= output[1]["score"]  # default threshold 0.5: verdict = higher score
    assert abs(output[0]["score"] + output[1]["score"] - 1.0) < 1e-6


def test_paths_lists_and_batches_agree(detector, tmp_path):
    paths = []
    for seed in range(5):
        path = tmp_path / f"image_{seed}.png"
        random_image(40, 36, seed).save(path)
        paths.append(str(path))
    one_by_one = [fake_score(detector(path)) for path in paths]
    batched = [fake_score(output) for output in detector(paths, batch_size=2)]
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    assert len({round(score, 6) for score in one_by_one}) > 1  # the images are actually scored


def test_threshold_sets_the_verdict(detector):
    image = random_image(40, 40, seed=7)
    score = fake_score(detector(image))
    assert detector(image, threshold=0.0)[0]["label"] == "fake"
    assert detector(image, threshold=1.0)[0]["label"] == ("fake" if score >= 1.0 else "real")
    assert fake_score(detector(image, threshold=0.0)) == pytest.approx(score)
    with pytest.raises(ValueError):
        detector(image, threshold=2.0)


def test_config_threshold_is_the_default(tmp_path):
    from helpers import save_tiny_detector

    strict = pipeline("ai-image-detection", model=str(save_tiny_detector(tmp_path, decision_threshold=1.0)))
    assert strict(random_image(40, 40))[0]["label"] == "real"


def test_bad_input_in_a_batch_is_reported_not_fatal(detector, bad_image_corpus):
    sources = [str(entry.path) for entry in bad_image_corpus.values()]
    outputs = detector(sources, batch_size=3)
    assert len(outputs) == len(sources)
    for (name, entry), output in zip(bad_image_corpus.items(), outputs):
        if entry.expect == "ok":
            assert isinstance(output, list) and 0.0 <= fake_score(output) <= 1.0, name
        else:
            assert isinstance(output, dict) and entry.path.name in output["error"], name


def test_on_error_raise(detector, bad_image_corpus):
    from aigi.image_io import ImageLoadError

    broken = next(entry for entry in bad_image_corpus.values() if entry.expect == "error")
    with pytest.raises(ImageLoadError):
        detector(str(broken.path), on_error="raise")


def test_protocol_parameter(detector):
    image = random_image(300, 280, seed=2)
    assert fake_score(detector(image, protocol="normalized")) != pytest.approx(fake_score(detector(image)), abs=1e-7)
    with pytest.raises(ValueError, match="unknown protocol"):
        detector(image, protocol="nope")


def test_stock_image_classification_pipeline(tiny_detector_dir, detector):
    stock = pipeline("image-classification", model=str(tiny_detector_dir), trust_remote_code=False)
    image = random_image(40, 40, seed=5)
    output = stock(image)
    assert {entry["label"] for entry in output} == {"real", "fake"}
    assert fake_score(output) == pytest.approx(fake_score(detector(image)), abs=1e-5)


def test_remote_code_loads_without_aigi(tiny_detector_dir, tmp_path):
    image_path = tmp_path / "probe.png"
    random_image(40, 40, seed=9).save(image_path)
    expected = fake_score(pipeline("ai-image-detection", model=str(tiny_detector_dir))(str(image_path)))
    result = load_without_aigi(tiny_detector_dir, image_path, tmp_path)
    assert result["model"] == "RescaleCLForImageClassification"
    assert result["module"].startswith("transformers_modules.")
    assert result["base"] == "RescaleCLModel"
    assert fake_score(result["output"]) == pytest.approx(expected, abs=1e-5)


def test_unknown_call_argument_is_refused(detector):
    with pytest.raises(TypeError):
        detector(random_image(40, 40), treshold=0.8)
