"""Model cards: every family's template renders, parses back, and carries the metrics.json results."""

import json

import pytest
from huggingface_hub import ModelCard

from aigi.hub.cards import METRICS, Evaluation, render_model_card, training_data_from_run
from aigi.registry import FAMILIES

METRICS_JSON = {
    "pooled": {"auroc": 0.809, "ap": 0.711, "acc": 0.752, "real_acc": 0.779, "fake_acc": 0.689,
               "tpr_at_5fpr": 0.422, "eer": 0.298, "n": 149, "n_real": 104, "n_fake": 45},
    "per_generator": {
        "ldm": {"auroc": 0.9, "ap": 0.8, "acc": 0.7, "real_acc": 0.779, "fake_acc": 0.5, "tpr_at_5fpr": 0.3,
                "eer": 0.2, "n": 132, "n_real": 104, "n_fake": 28},
        "sdxl": {"auroc": 0.6, "ap": 0.1, "acc": 0.7, "real_acc": 0.779, "fake_acc": 0.0, "tpr_at_5fpr": 0.0,
                 "eer": 0.4, "n": 106, "n_real": 104, "n_fake": 2},
    },
    "threshold": 0.37,
}


class FakeConfig:
    def __init__(self, model_type):
        self.model_type = model_type
        self.decision_threshold = 0.37
        self.image_size = 256


@pytest.fixture
def evaluation(tmp_path):
    metrics_file = tmp_path / "metrics.json"
    metrics_file.write_text(json.dumps(METRICS_JSON))
    return Evaluation(metrics_file, dataset_name="external test split", dataset_id="aigi/external",
                      protocol="normalized")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_card_parses_back_with_the_eval_results(family, evaluation, tmp_path):
    card = render_model_card(FakeConfig(family), model_name=f"{family}-tiny", repo_id=f"org/{family}-tiny",
                             evaluation=evaluation, training_data="Trained on `train`.")
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.pipeline_tag == "image-classification" and "ai-image-detection" in loaded.data.tags
    assert loaded.data.license == "apache-2.0" and loaded.data.model_name == f"{family}-tiny"
    results = {(result.dataset_config, result.metric_type): result for result in loaded.data.eval_results}
    assert len(results) == len(METRICS) + 2 * 2
    assert results[(None, "roc_auc")].metric_value == 0.809
    assert results[(None, "accuracy")].metric_name == "Acc@0.37"
    assert results[(None, "accuracy")].metric_args == {"threshold": 0.37}
    assert results[("sdxl", "average_precision")].metric_value == 0.1
    assert results[("ldm", "roc_auc")].dataset_args == {"protocol": "normalized", "n_real": 104, "n_fake": 28}
    assert all(result.dataset_type == "aigi/external" and result.dataset_split == "test"
               for result in results.values())
    text = loaded.text
    assert f"# {family}-tiny" in text and f'model="org/{family}-tiny"' in text
    assert "| pooled | 0.809 | 0.711 | 0.752 |" in text and "| sdxl | 0.600 |" in text
    assert "Trained on `train`." in text and "{{" not in text and "## Licence" in text


def test_card_without_results_says_so():
    card = render_model_card(FakeConfig("synerdetect"), model_name="SynerDetect (aigi reconstruction)")
    assert card.data.eval_results is None
    assert "No measured results are attached to this card." in card.text
    assert "**Status.** The architecture" in card.text  # only cards without results say nothing was trained


def test_training_data_from_the_run_folder(tmp_path):
    (tmp_path / "final").mkdir()
    (tmp_path / "training_args.json").write_text(json.dumps({"task": "classify", "train_data": "runs/split/train",
                                                             "max_steps": 250, "samples_per_class": None}))
    assert training_data_from_run(tmp_path / "final") == (
        "From the run's `training_args.json`: `task`: `classify`, `train_data`: `runs/split/train`, `max_steps`: `250`."
    )
    assert training_data_from_run(tmp_path / "final" / "elsewhere") is None
