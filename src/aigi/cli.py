"""The `aigi` command: detect, evaluate, train, models."""

import argparse
import csv
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigi", description="Tell real photographs from AI-generated images.")
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="Score image files and folders (recursive): P(fake) per image.")
    detect.add_argument("paths", nargs="+", help="Image files and/or folders.")
    detect.add_argument("--model", default=None, help="Bundled name, local directory or Hub id.")
    detect.add_argument("--threshold", type=float, default=None, help="Default: the model's calibrated threshold.")
    detect.add_argument("--batch-size", type=int, default=16)
    output_format = detect.add_mutually_exclusive_group()
    output_format.add_argument("--json", action="store_true", help="Print a JSON list.")
    output_format.add_argument("--csv", action="store_true", help="Print CSV.")

    evaluate = commands.add_parser("evaluate", help="Metrics of a detector on a labelled folder or saved dataset.")
    evaluate.add_argument("--model", required=True, help="Bundled name, local directory or Hub id.")
    evaluate.add_argument("--data", required=True, help="real/ + fake/<generator>/ folder, manifest or saved dataset.")
    evaluate.add_argument(
        "--protocol", default="normalized",
        help="Evaluation protocol (default: normalized), a comma-separated list, or 'robustness' (normalized and "
             "every degradation of the robustness suite). Several protocols write one subfolder each, plus "
             "robustness.json, robustness.md and robustness.png.",
    )
    evaluate.add_argument("--output", required=True, help="Folder for metrics.json, metrics.md and plots.")
    evaluate.add_argument("--threshold", type=float, default=None)
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--split", default=None, help="Split of a saved DatasetDict (default: test).")

    models = commands.add_parser("models", help="List detector families and bundled checkpoints.")
    models.add_argument("--json", action="store_true")

    commands.add_parser("samples", help="Print the folder of the bundled sample images.")
    commands.add_parser("train", help="Train a detector (same as `accelerate launch -m aigi.train`).", add_help=False)
    return parser


def run_detect(args) -> int:
    from transformers import pipeline

    from .evaluation.runner import score_sources
    from .image_io import collect_image_files
    from .pipeline import fake_score
    from .registry import resolve_model

    try:
        model = resolve_model(args.model)
        files = collect_image_files(args.paths)
    except (ValueError, FileNotFoundError) as error:
        print(f"aigi detect: {error}", file=sys.stderr)
        return 2
    pipe = pipeline("ai-image-detection", model=model)
    outputs = score_sources(
        pipe, [str(file) for file in files], batch_size=args.batch_size, threshold=args.threshold,
        description="detect",
    )
    rows = []
    for file, output in zip(files, outputs):
        if isinstance(output, dict):
            rows.append({"path": str(file), "label": None, "score": None, "error": output["error"]})
        else:  # the pipeline puts the verdict at the threshold first
            rows.append({"path": str(file), "label": output[0]["label"], "score": fake_score(output), "error": None})
    print_rows(rows, args)
    return 1 if rows and all(row["error"] for row in rows) else 0


def print_rows(rows: list[dict], args) -> None:
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=["path", "label", "score", "error"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            verdict = f"ERROR {row['error']}" if row["error"] else f"{row['label']:4s}  P(fake)={row['score']:.4f}"
            print(f"{verdict}  {row['path']}")


def run_evaluate(args) -> int:
    from .evaluation.report import format_markdown_table, format_robustness_table
    from .evaluation.runner import evaluate_detector, evaluate_robustness, parse_protocols

    try:
        protocols = parse_protocols(args.protocol)
    except ValueError as error:
        print(f"aigi evaluate: {error}", file=sys.stderr)
        return 2
    options = {"threshold": args.threshold, "batch_size": args.batch_size, "split": args.split}
    if len(protocols) == 1:
        result = evaluate_detector(args.model, args.data, args.output, protocol=protocols[0], **options)
        print(format_markdown_table(result))
        failures, failures_file = result["failures"], f"{args.output}/failures.json"
    else:
        robustness = evaluate_robustness(args.model, args.data, args.output, protocols=protocols, **options)
        print(format_robustness_table(robustness["summary"]))
        # A file that cannot be read fails under every protocol.
        failures = robustness["results"][protocols[0]]["failures"]
        failures_file = f"{args.output}/{protocols[0]}/failures.json"
    if failures:
        print(f"{len(failures)} images could not be read: see {failures_file}")
    print(f"report written to {args.output}")
    return 0


def run_models(args) -> int:
    from .registry import FAMILIES, bundled_checkpoints

    checkpoints = bundled_checkpoints()
    if args.json:
        print(json.dumps(checkpoints, indent=2))
        return 0
    print("Families:")
    for family in FAMILIES.values():
        print(f"  {family.name:12s} {family.paper}")
    print("Bundled checkpoints:")
    for checkpoint in checkpoints:
        size_mb = checkpoint["size_bytes"] / 1e6
        print(f"  {checkpoint['name']:24s} {checkpoint['family']:12s} {size_mb:8.1f} MB  {checkpoint['path']}")
    if not checkpoints:
        print("  (none yet: train one with `aigi train`, then pass its folder as --model)")
    return 0


def run_samples(args) -> int:
    from .registry import SAMPLES_DIR

    print(SAMPLES_DIR)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "train":
        from .train import main as train_main

        train_main(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    commands = {"detect": run_detect, "evaluate": run_evaluate, "models": run_models, "samples": run_samples}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
