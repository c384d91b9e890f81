"""Heads fitted on a frozen FiSeR encoder: class prototypes, a kNN feature bank, a logistic head or an RBF SVM.

`fit_head` is `aigi fit-head` (all the labelled data, or `shots` images per class) and `aigi fewshot` (an SVM or
logistic head on k images per class of a new domain, as FiSeR's few-shot adaptation). The result is a detector
checkpoint the pipeline loads like any other.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoImageProcessor

from ..data.layouts import load_detection_records
from ..data.records import FAKE_LABEL, REAL_LABEL, DetectionRecord
from ..data.sources import source_balanced_weights
from ..evaluation.features import extract_features
from ..modeling.fiser import FiSeRConfig, FiSeRForImageClassification, FiSeRModel
from ..modeling.fiser.configuration_fiser import HEADS
from .tasks import few_shot_subset

HEAD_FIT_FILE = "head_fit.json"
FEW_SHOT_HEADS = ("svm", "logistic")


@dataclass
class HeadFitReport:
    """What a head was fitted on (written as `head_fit.json` next to the checkpoint)."""

    encoder: str
    data: str
    split: str | None
    head: str
    protocol: str
    shots: int | None
    seed: int
    fake_generators: list[str] | None
    real_count: int
    fake_count: int
    head_size: int
    failures: list[dict]


def select_records(
    records: list[DetectionRecord], *, shots: int | None, seed: int, fake_generators: list[str] | None
) -> list[DetectionRecord]:
    """Reals plus the fakes of `fake_generators` (all fakes when None); with `shots`, that many of each class
    (`few_shot_subset`, the sampling of `aigi train --samples_per_class`)."""
    if fake_generators is not None:
        unknown = set(fake_generators) - {record.generator for record in records if record.label == FAKE_LABEL}
        if unknown:
            raise ValueError(f"no fake images of generator(s) {sorted(unknown)} in the data")
        records = [record for record in records if record.label == REAL_LABEL or record.generator in fake_generators]
    for label in (REAL_LABEL, FAKE_LABEL):
        if not any(record.label == label for record in records):
            raise ValueError(f"fitting a head needs images of label {label}; the data has none")
    return records if shots is None else few_shot_subset(records, shots, seed)


def head_state(
    head: str, features: np.ndarray, labels: np.ndarray, *, logistic_c: float = 1.0, standardize: bool = False,
    sample_weight: np.ndarray | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """The fitted tensors of `head` (keys of its module's state dict) and the config fields the fit sets. The
    logistic head has inverse regularisation `logistic_c`; with `standardize` it is fitted on features scaled to
    zero mean and unit variance, and the scaling is folded into its weights (the head still reads raw features);
    `sample_weight` weighs the images of its fit (e.g. `source_balanced_weights`; the other heads refuse it)."""
    if sample_weight is not None and head != "logistic":
        raise ValueError(f"sample weights are for the logistic head; the {head} head takes none")
    if head == "prototype":
        prototypes = np.stack([features[labels == label].mean(axis=0) for label in (REAL_LABEL, FAKE_LABEL)])
        prototypes = torch.nn.functional.normalize(torch.from_numpy(prototypes).float(), dim=1)
        return {"prototypes": prototypes}, {"head_size": 0}
    if head == "knn":
        bank = torch.from_numpy(features).float()
        return {"bank": bank, "bank_labels": torch.from_numpy(labels).long()}, {"head_size": len(bank)}
    if head == "logistic":
        from sklearn.linear_model import LogisticRegression

        mean, scale = np.zeros(features.shape[1]), np.ones(features.shape[1])
        if standardize:
            mean, scale = features.mean(axis=0), features.std(axis=0)
            scale[scale == 0] = 1.0
        classifier = LogisticRegression(C=logistic_c, max_iter=5000).fit(
            (features - mean) / scale, labels, sample_weight=sample_weight)
        weight = classifier.coef_ / scale
        bias = classifier.intercept_ - weight @ mean
        state = {"linear.weight": torch.from_numpy(weight).float(), "linear.bias": torch.from_numpy(bias).float()}
        return state, {"head_size": 0}
    if head == "svm":
        from sklearn.svm import SVC

        classifier = SVC(C=1.0, kernel="rbf", gamma="scale").fit(features, labels)
        # decision_function > 0 means classes_[1], which is FAKE_LABEL (labels are 0/1).
        state = {"support_vectors": torch.from_numpy(classifier.support_vectors_).float(),
                 "dual_coef": torch.from_numpy(classifier.dual_coef_[0]).float(),
                 "intercept": torch.tensor(float(classifier.intercept_[0]))}
        return state, {"head_size": len(classifier.support_vectors_), "svm_gamma": float(classifier._gamma)}
    raise ValueError(f"head must be one of {HEADS}, got {head!r}")


def fit_head(
    encoder: str,
    data: str,
    output_dir: str | Path,
    *,
    head: str = "prototype",
    split: str | None = None,
    shots: int | None = None,
    fake_generators: list[str] | None = None,
    protocol: str = "raw",
    seed: int = 0,
    batch_size: int = 32,
    knn_k: int | None = None,
    logistic_c: float = 1.0,
    standardize: bool = False,
    balance_sources: bool = False,
) -> HeadFitReport:
    """Fit `head` on the frozen features of `encoder` (a FiSeR encoder or detector) over `data`, save the detector
    (`logistic_c`, `standardize`: see `head_state`; `balance_sources`: the logistic head weighs every source group of
    a class the same, `source_balanced_weights`)."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    records = select_records(
        load_detection_records(data, split=split), shots=shots, seed=seed, fake_generators=fake_generators
    )
    model = FiSeRModel.from_pretrained(encoder).eval()
    processor = AutoImageProcessor.from_pretrained(encoder)
    extracted = extract_features(
        model.image_features, processor, records, protocol=protocol, batch_size=batch_size,
        description=f"features for the {head} head",
    )
    if len(set(extracted.labels.tolist())) < 2:
        raise ValueError("the readable images hold only one class; a head needs real and fake images")
    kept = {record.id: record for record in records}
    weights = source_balanced_weights([kept[key] for key in extracted.ids]) if balance_sources else None
    state, config_fields = head_state(head, extracted.features, extracted.labels, logistic_c=logistic_c,
                                      standardize=standardize, sample_weight=weights)
    config_values = {**model.config.to_dict(), "head": head, **config_fields}
    if knn_k is not None:
        config_values["knn_k"] = knn_k
    config = FiSeRConfig.from_dict(config_values)
    detector = FiSeRForImageClassification(config).eval()
    detector.fiser.load_state_dict(model.state_dict())
    detector.head.load_state_dict(state)
    output_dir = Path(output_dir)
    detector.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    report = HeadFitReport(
        encoder=str(encoder), data=str(data), split=split, head=head, protocol=protocol, shots=shots, seed=seed,
        fake_generators=fake_generators, real_count=int((extracted.labels == REAL_LABEL).sum()),
        fake_count=int((extracted.labels == FAKE_LABEL).sum()), head_size=config.head_size,
        failures=extracted.failures,
    )
    (output_dir / HEAD_FIT_FILE).write_text(json.dumps(asdict(report), indent=2))
    return report
