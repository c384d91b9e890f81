"""Render the cards in this folder from the family templates and the measured results in `results/`.

Run from the repository root: `.venv/bin/python model_cards/render_cards.py`. Each card describes a checkpoint trained
here (its weights are not in git; its recipe rebuilds them to the `runs/` folder the card names), with the threshold
and crop of its saved config; SynerDetect, never trained here, gets its family card without results. The card of the
bundled default detector (weights in the package) adds its row of the benchmark leaderboard.
"""

import json
from pathlib import Path
from types import SimpleNamespace

from aigi.hub.cards import Evaluation, render_model_card, training_data_from_run
from aigi.registry import DEFAULT_DETECTOR, default_detector_path

RESULTS = Path("results")
EXTERNAL_DATA_LICENSE = (
    "the external development set: real photos and LDM / Stable Diffusion outputs gathered from public sources, "
    "each under its own licence (see `results/datasets/external_normalized/` and `src/aigi/samples/LICENSES.md`)."
)
EXTERNAL_TEST = dict(dataset_name="external test split, in-source: a random split of the training sources (104 real, "
                                  "45 fake)", dataset_id="aigi/external", split="test", protocol="normalized")

def synerdetect_offline_evaluation() -> str:
    """The offline configuration's cross-source figures (results/synerdetect/metrics.json)."""
    metrics = json.loads((RESULTS / "synerdetect" / "metrics.json").read_text())
    folds = " ".join(f"{fold['auroc']:.3f}" for fold in metrics["per_fold"])
    return ("Offline configuration on the cross-source benchmark (`aigi benchmark --config "
            "recipes/synerdetect_offline.yaml`;\n5 folds of whole source groups; one 64-px centre crop per image). "
            "These figures come from\n`results/synerdetect/metrics.json`:\n\n"
            "| mean AUROC (± std) | AUROC, folds 0-4 | mean AP | pooled out-of-fold AUROC | fake accuracy at 5% FPR |\n"
            "| ---: | --- | ---: | ---: | ---: |\n"
            f"| {metrics['mean_auroc']:.3f} ({metrics['std_auroc']:.3f}) | {folds} | {metrics['mean_ap']:.3f} | "
            f"{metrics['pooled']['auroc']:.3f} | {metrics['pooled']['fake_acc']:.3f} |\n\n"
            "This is chance level, and below CNNSpot's recipe trained from scratch on the same folds "
            "(`results/cross_source/cross_source.md`). It says nothing about the paper's model: the towers are random "
            "rather than CLIP-pretrained, the text tower is random, the diffusion model is tiny and barely trained, the "
            "inputs are 64-px crops, and training stopped before half an epoch. The paper's numbers remain "
            "unreproduced.")


def family_cross_source_section(results_dir: Path, command: str) -> str:
    """The family's rows of the cross-source benchmark (`results_dir/results.json`): what its recipe gives on sources
    it never saw, beside the in-source evaluation of the card's own checkpoint."""
    lines = [f"## Cross-source benchmark (`{command}`)", "",
             "The card's checkpoint is evaluated above on images of its own training sources (in-source). The same "
             "family trained by the cross-source recipe, once per fold on 4 of 5 folds of whole source groups of the "
             "training pool and scored on the fifth (sources and generators it never saw; the numbers every choice "
             "is made by):", "",
             "| run | scoring | mean AUROC (± std) | AUROC, folds 0-4 | fake accuracy at 5% FPR |",
             "|---|---|---:|---|---:|"]
    for entry in json.loads((results_dir / "results.json").read_text())["detectors"]:
        for summary in (entry.get("cross_source") or {}).values():
            folds = " ".join(f"{fold['auroc']:.3f}" for fold in summary["per_fold"])
            crops = f"{summary['num_crops']} crop{'s' if summary['num_crops'] > 1 else ''}"
            lines.append(f"| {entry['name']} | {summary['protocol']}, {crops} | "
                         f"{summary['mean_auroc']:.3f} ({summary['std_auroc']:.3f}) | {folds} | "
                         f"{summary['pooled']['fake_acc']:.3f} |")
    lines += ["", f"Commands, wall times and what the rows show: `{results_dir}/README.md`; every family: "
              "`results/cross_source/README.md`.", ""]
    return "\n".join(lines)


CARDS = {
    "rescalecl.md": dict(
        config=SimpleNamespace(model_type="rescalecl", decision_threshold=0.5, image_size=256),
        model_name="RescaleCL (Xception, fine-tuned on the external set)",
        model_path="runs/rescalecl_finetune/final",
        evaluation=Evaluation(RESULTS / "rescalecl/finetune/eval_external_test/metrics.json", **EXTERNAL_TEST),
        training_data=training_data_from_run(RESULTS / "rescalecl/finetune/final"),
        extra=family_cross_source_section(
            RESULTS / "cross_source_rescalecl", "aigi benchmark --config recipes/cross_source.yaml --only "
            "rescalecl_lite0_imagenet,rescalecl_lite0_scratch"),
    ),
    "gensign.md": dict(
        config=SimpleNamespace(**json.loads((RESULTS / "gensign/detector/final_config.json").read_text())),
        model_name="GenSign (RGB + signature, self-augmentation 0.2, external set)",
        model_path="runs/gensign_detector/final",
        evaluation=Evaluation(RESULTS / "gensign/full_normalized/metrics.json", **EXTERNAL_TEST),
        training_data=training_data_from_run(RESULTS / "gensign/detector/final"),
        extra=family_cross_source_section(RESULTS / "cross_source_gensign", "bash recipes/gensign_cross_source.sh"),
    ),
    "fiser.md": dict(
        config=SimpleNamespace(**json.loads((RESULTS / "fiser/fiser_full_knn/final_config.json").read_text())),
        model_name="FiSeR (ResNet-10-T, coarse + fine, kNN head; external + local generators, conv_vae held out)",
        model_path="runs/fiser_full_knn",
        evaluation=Evaluation(
            RESULTS / "fiser/fiser_full_knn/local/metrics.json",
            dataset_name="local generators test split, in-source except conv_vae (208 real crops of the training "
                         "sources, 6 x 50 fakes; conv_vae never trained on)",
            dataset_id="aigi/local_generators", split="test", protocol="normalized",
        ),
        training_data=training_data_from_run(RESULTS / "fiser/fiser_full"),
        extra=family_cross_source_section(
            RESULTS / "cross_source_fiser", "aigi benchmark --config recipes/fiser_cross_source.yaml"),
    ),
    "synerdetect.md": dict(
        config=SimpleNamespace(model_type="synerdetect", decision_threshold=0.5, image_size=256),
        model_name="SynerDetect (aigi reconstruction)",
        model_path="runs/synerdetect_paper/final",
        evaluation=None,
        training_data=(
            "The paper configuration has not been trained. The offline configuration was trained on the cross-source "
            "training pool (`data/pool/manifest.csv`), once per fold, on the four other folds' sources. Each fold's "
            "UNet saw only the real photos of those sources."),
        evaluation_text=synerdetect_offline_evaluation,
        data_license="the offline configuration used the cross-source pool (`results/datasets/pool/`).",
    ),
}



def benchmark_section(record: dict) -> str:
    """The default detector's leaderboard figures, its selection and its calibration, as card Markdown."""
    choice, row = record["default_detector"], record["results"]
    lines = ["## Benchmark (`bash recipes/benchmark_external_local.sh`)", "",
             f"Chosen by `aigi benchmark` ({choice['rule']}; selection data: the validation splits, "
             f"`{choice['selection_data']}`, protocol `{choice['protocol']}`): selection AUROC "
             f"{choice['selection_auroc']:.3f}. Threshold {choice['threshold']:.4f}: {choice['target_fpr']:.0%} of "
             "the selection data's real images score at or above it.", "",
             "| test data | protocol | AUROC | AP | Acc@0.5 | ECE | held-out generator AUROC |",
             "|---|---|---:|---:|---:|---:|---|"]
    for dataset, values in row["datasets"].items():
        held_out = ", ".join(f"{name} {value:.3f}" for name, value in values["held_out_auroc"].items()) or "–"
        lines.append(f"| {dataset} | {values['protocol']} | {values['auroc']:.3f} | {values['ap']:.3f} | "
                     f"{values['acc']:.3f} | {values['ece']:.3f} | {held_out} |")
    lines += ["", "Acc@0.5 is at the threshold the checkpoint had during the benchmark (before calibration); ECE is "
              "of the raw P(fake). All figures and the other detectors: `results/benchmark/leaderboard.md`.", ""]
    return "\n".join(lines)


def probe_training_data(summary_file: Path) -> str | None:
    """What a frozen probe's head was fitted on (recipes/frozen_probe_cross_source.py's summary.json)."""
    if not summary_file.is_file():
        return None
    summary = json.loads(summary_file.read_text())
    weighting = {"source": ", every source group of a class weighing the same in the fit (1 / its images)",
                 "none": ", every image weighing the same"}[summary["weighting"]]
    views = summary.get("input_views", ["image"])
    seen = ("" if views == ["image"] else
            f", applied to each of its input views ({', '.join(views)}: the image, and its residual after a 3x3 blur)")
    return (f"The encoder was not trained here (ImageNet-1k weights of `{summary['backbone']}`{seen}). The logistic head "
            f"(C {summary['logistic_c']:g}{weighting}) was fitted on the features of all {summary['images']} images "
            "of the source-labelled training pool (`datasets_scripts/build_training_pool.py`, card in "
            f"`results/datasets/pool/`) under protocol `{summary['protocol']}`: real photos of 49 source groups and "
            "outputs of 62 generator source groups. C and the weighting were chosen by the mean cross-source AUROC "
            "(`recipes/frozen_probe_cross_source.py`).")


def robustness_lines(results_dir: Path) -> list[str]:
    """The probe's held-out AUROC when files were re-encoded (recipes/exploratory/probe_variants.py robustness), when
    `robustness.json` measured this probe's own configuration."""
    file, summary_file = results_dir / "robustness.json", results_dir / "default_detector" / "summary.json"
    if not (file.is_file() and summary_file.is_file()):
        return []
    robustness, summary = json.loads(file.read_text()), json.loads(summary_file.read_text())
    if any(summary.get(key) != value for key, value in robustness["probe"].items()):
        return []
    measured = robustness["results"]["clean"]
    names = {"clean": "clean", "fakes_reencoded": "fakes re-encoded", "reals_reencoded": "photos re-encoded",
             "both_reencoded": "both re-encoded"}
    return [f"- Re-encoded files (`{robustness['command']}`; {robustness['reencode']}): mean cross-source AUROC "
            + ", ".join(f"{names[key]} {values['mean_auroc']:.3f}" for key, values in measured.items())
            + ". Part of what the probe ranks by is a file's history; expect the lower figures on resized or "
            "recompressed images."]


def cross_source_section(record: dict) -> str:
    """The default detector's cross-source figures (per fold, out of fold at its threshold, per family, holdouts)."""
    choice, summary = record["default_detector"], record["results"]["cross_source"]
    summary = next(value for value in summary.values()
                   if (value["protocol"], value["num_crops"]) == (choice["protocol"], choice["num_crops"]))
    pooled = summary["pooled"]
    lines = ["## Cross-source benchmark (`bash recipes/cross_source.sh`)", "",
             f"Chosen by the rule: {choice['rule']}. Scored under protocol `{choice['protocol']}` with "
             f"{choice['num_crops']} crop(s) per image (this checkpoint's `preprocessor_config.json`). Every number "
             "below is on sources (cameras, collections, repositories) and generators that the model scoring them "
             "never saw in training: each fold's sources are scored by a model trained on the other folds.", "",
             f"- Mean AUROC over the {len(summary['per_fold'])} folds: **{summary['mean_auroc']:.3f}** "
             f"(± {summary['std_auroc']:.3f}); per fold: "
             + ", ".join(f"{fold['auroc']:.3f}" for fold in summary["per_fold"]) + ".",
             f"- All out-of-fold scores together: AUROC {pooled['auroc']:.3f}, AP {pooled['ap']:.3f}; at the "
             f"shipped threshold {choice['threshold']:.4f} ({choice['target_fpr']:.0%} of the out-of-fold real "
             f"photos at or above it) real accuracy {pooled['real_acc']:.3f}, **fake accuracy "
             f"{pooled['fake_acc']:.3f}**.",
             "- Per generator family (all out-of-fold reals against that family's fakes): "
             + ", ".join(f"{family} {values['auroc']:.3f}" for family, values in sorted(summary["per_family"].items())
                         if values.get("auroc") is not None) + "."]
    for name, values in summary.get("holdouts", {}).items():
        lines.append(f"- `{name}` held out as a whole (with every source group it shares): AUROC "
                     f"{values['auroc']:.3f}, real accuracy {values['real_acc']:.3f}, fake accuracy "
                     f"{values['fake_acc']:.3f} at the shipped threshold.")
    lines += robustness_lines(Path(record["results_file"]).parent)
    lines += ["", "The shipped weights are the same recipe trained on the whole pool; the fold models only measure. "
              "All detectors and arms: `results/cross_source/cross_source.md`.", ""]
    return "\n".join(lines)


if DEFAULT_DETECTOR is not None:
    default_dir = Path(default_detector_path())
    record = json.loads((default_dir / "benchmark.json").read_text())
    choice = record["default_detector"]
    config = SimpleNamespace(**json.loads((default_dir / "config.json").read_text()))
    common = dict(config=config, model_name=f"{DEFAULT_DETECTOR} (aigi's bundled default detector)",
                  model_path=f"src/aigi/checkpoints/{DEFAULT_DETECTOR}")
    if "cross_source_mean_auroc" in choice:
        scoring = f"{choice['protocol']}_crops{choice['num_crops']}"
        results_dir = Path(record["results_file"]).parent
        holdout = next(iter(record["results"]["cross_source"][scoring].get("holdouts", {})), None)
        holdout_metrics = results_dir / "eval" / f"{choice['name']}__{holdout}" / scoring / "held_out" / "metrics.json"
        CARDS[f"{DEFAULT_DETECTOR}.md"] = dict(
            **common,
            evaluation=Evaluation(
                holdout_metrics, dataset_name=f"{holdout} held out of training (its sources never seen)",
                dataset_id=f"aigi/{holdout}", split="all", protocol=choice["protocol"],
            ) if holdout_metrics.is_file() else None,
            training_data=training_data_from_run(results_dir / "default_detector")
            or probe_training_data(results_dir / "default_detector" / "summary.json"),
            extra=cross_source_section(record),
        )
    else:
        eval_dir = RESULTS / "benchmark" / "eval" / choice["name"]
        CARDS[f"{DEFAULT_DETECTOR}.md"] = dict(
            **common,
            evaluation=Evaluation(
                eval_dir / "local" / "metrics.json",
                dataset_name="local generators test split (208 real crops, 6 x 50 fakes; conv_vae never trained on)",
                dataset_id="aigi/local_generators", split="test", protocol="normalized",
            ),
            training_data=training_data_from_run(RESULTS / "benchmark" / "default_detector"),
            extra=benchmark_section(record),
        )

for file_name, card in CARDS.items():
    rendered = render_model_card(
        card["config"], model_name=card["model_name"], repo_id=card["model_path"], evaluation=card["evaluation"],
        training_data=card["training_data"] or "Not recorded with this checkpoint.",
        data_license=card.get("data_license") or (EXTERNAL_DATA_LICENSE if card["evaluation"] else "no data used yet."),
    )
    if card.get("evaluation_text"):
        rendered.content = rendered.content.replace("No measured results are attached to this card.",
                                                    card["evaluation_text"](), 1)
    if card.get("extra"):
        rendered.content = rendered.content.replace("## Limitations", card["extra"] + "\n## Limitations", 1)
    rendered.save(Path(__file__).parent / file_name)
    print(f"wrote model_cards/{file_name}")
