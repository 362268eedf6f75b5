"""The client subcommands and their handlers (each receives the parsed args and a Client)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.table import Table

from ..client import Client
from .common import (EXIT_OK, UsageError, metrics_text, print_items, print_json, read_json_file,
                     run, server_options, stdout, table, when)
from .follow import follow, print_summary
from .inputs import read_labelled, read_rows

FORMATS = {".npz": "npz", ".json": "json", ".safetensors": "safetensors"}


def add_client_commands(commands: argparse._SubParsersAction) -> None:
    """Register submit, jobs, params, predict, evaluate and datasets on the top-level subparsers."""
    common = server_options()

    submit = commands.add_parser("submit", parents=[common], help="submit a job spec (JSON)")
    submit.add_argument("spec", metavar="SPEC.json", help="the job spec file ('-' for stdin)")
    submit.add_argument("--follow", action="store_true",
                        help="show live progress until the job ends; exit 0/1/3 for "
                             "succeeded/failed/cancelled")
    submit.add_argument("--idempotency-key", help="resubmitting with the same key returns "
                        "the same job (default: a fresh key per call)")
    submit.set_defaults(handler=run(submit_job))

    jobs = commands.add_parser("jobs", help="list, show, follow, cancel or delete jobs")
    actions = jobs.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="jobs, newest first")
    listing.add_argument("--status", help="queued, running, succeeded, failed, cancelled, ... "
                         "(the server checks the name)")
    listing.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                         help="jobs carrying this tag (repeat: every one of them)")
    listing.add_argument("--name-prefix", help="jobs whose name starts with this (case-sensitive)")
    listing.add_argument("--sweep", metavar="SWEEP_ID", help="the trials of this sweep")
    listing.add_argument("--limit", type=int, default=20, help="at most N jobs (default 20)")
    listing.set_defaults(handler=run(list_jobs))
    for name, handler, text in (("show", show_job, "one job's status, progress and result"),
                                ("follow", follow_job, "live progress until the job ends"),
                                ("cancel", cancel_job, "stop a queued or running job"),
                                ("delete", delete_job, "delete an ended job")):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("job_id", metavar="ID")
        action.set_defaults(handler=run(handler))

    params = commands.add_parser("params", parents=[common], help="download trained parameters")
    params.add_argument("job_id", metavar="ID")
    params.add_argument("-o", "--output", required=True, metavar="FILE")
    params.add_argument("--format", choices=sorted(set(FORMATS.values())),
                        help="default: from FILE's extension, else npz")
    params.add_argument("--layout", choices=("needle", "torch"), default="needle")
    params.set_defaults(handler=run(download_parameters))

    predict = commands.add_parser("predict", parents=[common], help="classify rows")
    predict.add_argument("job_id", metavar="ID")
    predict.add_argument("--input", required=True, metavar="FILE", help=".csv, .npz or .json")
    predict.add_argument("-o", "--output", metavar="FILE",
                         help="write the prediction as .json or .csv instead of printing")
    predict.add_argument("--label-column", default="label",
                         help="CSV with a header: leave this column out (default: label)")
    predict.set_defaults(handler=run(predict_rows))

    evaluate = commands.add_parser("evaluate", parents=[common],
                                   help="metrics of a trained model on labelled data")
    evaluate.add_argument("job_id", metavar="ID")
    data = evaluate.add_mutually_exclusive_group(required=True)
    data.add_argument("--input", metavar="FILE", help=".csv (a header row with the label "
                      "column), .npz (x, y) or .json (a data source, as a job spec's data)")
    data.add_argument("--dataset", metavar="DATASET_ID", help="an uploaded dataset")
    evaluate.add_argument("--label-column", default="label",
                          help="CSV: the column with the labels (default: label)")
    evaluate.set_defaults(handler=run(evaluate_job))

    datasets = commands.add_parser("datasets", help="upload, list or delete datasets")
    dataset_actions = datasets.add_subparsers(dest="action", required=True)
    upload = dataset_actions.add_parser("upload", parents=[common], help="upload .npz or .csv")
    upload.add_argument("file", metavar="FILE")
    upload.add_argument("--name")
    upload.add_argument("--label-column", help="CSV: the column with labels (default: label)")
    upload.set_defaults(handler=run(upload_dataset))
    dataset_actions.add_parser("list", parents=[common], help="every dataset").set_defaults(
        handler=run(list_datasets))
    delete = dataset_actions.add_parser("delete", parents=[common], help="delete a dataset")
    delete.add_argument("dataset_id", metavar="ID")
    delete.set_defaults(handler=run(delete_dataset))


def submit_job(args, client: Client) -> int:
    """submit SPEC.json [--follow]"""
    job = client.submit(read_json_file(args.spec), idempotency_key=args.idempotency_key)
    if args.follow:
        if not args.json:
            stdout.print(f"submitted job {job['id']}", markup=False)
        return follow(client, job["id"], args.json)
    if args.json:
        print_json(job)
    else:
        stdout.print(f"submitted job {job['id']} ({job['status']}, {job['param_count']} "
                     f"parameters, {job['progress']['steps']} steps)", markup=False)
    return EXIT_OK


def list_jobs(args, client: Client) -> int:
    """jobs list [--status S] [--tag KEY=VALUE ...] [--name-prefix P] [--sweep ID] [--limit N]"""
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    jobs = list(client.list(status=args.status, tags=_tags(args.tag), limit=args.limit,
                            name_prefix=args.name_prefix, sweep_id=args.sweep))
    return print_items(jobs, args.json, ("ID", "STATUS", "EPOCH", "STEP", "CREATED", "RESULT"),
                       _job_row)


def _job_row(job: dict) -> list[str]:
    progress = job["progress"]
    return [job["id"], job["status"], f"{progress['epoch']}/{progress['epochs']}",
            f"{progress['step']}/{progress['steps']}", when(job["created_at"]),
            metrics_text(job.get("result"), ("train_loss", "val_error")) or
            (job.get("error") or "")[:60]]


def _tags(items: list[str]) -> dict[str, str]:
    """["team=vision", ...] -> {"team": "vision"} (split at the first "=")."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag takes KEY=VALUE, not {item!r}")
        tags[key] = value
    return tags


def show_job(args, client: Client) -> int:
    """jobs show ID"""
    job = client.get(args.job_id)
    if args.json:
        print_json(job)
        return EXIT_OK
    print_summary(job)
    model = job["spec"]["model"]
    stdout.print(f"model {model['type']}, {job['param_count']} parameters; attempt "
                 f"{job['attempt']}; created {job['created_at']}", markup=False)
    return EXIT_OK


def follow_job(args, client: Client) -> int:
    """jobs follow ID"""
    return follow(client, args.job_id, args.json)


def cancel_job(args, client: Client) -> int:
    """jobs cancel ID"""
    job = client.cancel(args.job_id)
    if args.json:
        print_json(job)
    else:
        state = job["status"] if job["status"] == "cancelled" else "cancel requested"
        stdout.print(f"job {job['id']}: {state}", markup=False)
    return EXIT_OK


def delete_job(args, client: Client) -> int:
    """jobs delete ID"""
    client.delete(args.job_id)
    if args.json:
        print_json({"deleted": args.job_id})
    else:
        stdout.print(f"deleted job {args.job_id}", markup=False)
    return EXIT_OK


def download_parameters(args, client: Client) -> int:
    """params ID -o FILE [--format F] [--layout L]"""
    fmt = args.format or FORMATS.get(Path(args.output).suffix.lower(), "npz")
    try:
        path = client.parameters(args.job_id, fmt, args.layout, output=args.output)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    size = path.stat().st_size
    if args.json:
        print_json({"path": str(path), "bytes": size, "format": fmt, "layout": args.layout})
    else:
        stdout.print(f"wrote {path} ({fmt}, {args.layout} layout, {size} bytes)", markup=False)
    return EXIT_OK


def predict_rows(args, client: Client) -> int:
    """predict ID --input FILE [-o FILE]"""
    prediction = client.predict(args.job_id, read_rows(args.input, args.label_column))
    plain = {key: value.tolist() if isinstance(value, np.ndarray) else value
             for key, value in prediction.items()}
    if args.output:
        _write_prediction(Path(args.output), plain)
    if args.json:
        print_json(plain)
    elif args.output:
        stdout.print(f"wrote {len(plain['classes'])} predictions to {args.output}", markup=False)
    else:
        stdout.print(_prediction_table(plain))
    return EXIT_OK


# per-row fields a prediction may carry, in display order (regression models give `outputs`)
PREDICTION_COLUMNS = (("classes", "CLASS"), ("probabilities", "PROBABILITIES"),
                      ("outputs", "OUTPUTS"))


def _prediction_table(prediction: dict) -> Table:
    columns = [(key, title) for key, title in PREDICTION_COLUMNS if key in prediction] or \
        [("logits", "LOGITS")]
    return table(("ROW", *(title for _, title in columns)),
                 ([str(row), *(_cell(prediction[key][row]) for key, _ in columns)]
                  for row in range(len(prediction[columns[0][0]]))))


def _cell(value) -> str:
    if isinstance(value, list):
        return " ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _write_prediction(path: Path, prediction: dict) -> None:
    try:
        if path.suffix.lower() == ".csv":
            path.write_text(_prediction_csv(prediction), encoding="utf-8")
        else:
            path.write_text(json.dumps(prediction), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _prediction_csv(prediction: dict) -> str:
    """One line per row: class, then p0..p(C-1) (or the outputs / logits of other models)."""
    keys = [key for key, _ in PREDICTION_COLUMNS if key in prediction] or ["logits"]
    header, rows = [], None
    for key in keys:
        values = prediction[key]
        width = len(values[0]) if isinstance(values[0], list) else 0
        prefix = {"probabilities": "p", "outputs": "y", "logits": "logit"}.get(key, "")
        header += [f"{prefix}{i}" for i in range(width)] if width else ["class"]
        cells = [[repr(v) for v in row] if width else [str(row)] for row in values]
        rows = cells if rows is None else [a + b for a, b in zip(rows, cells)]
    return "\n".join([",".join(header)] + [",".join(row) for row in rows]) + "\n"


def evaluate_job(args, client: Client) -> int:
    """evaluate ID (--input FILE | --dataset ID) [--label-column C]"""
    labelled = ({"data": {"type": "dataset", "id": args.dataset}} if args.dataset else
                read_labelled(args.input, args.label_column))
    evaluation = client.evaluate(args.job_id, **labelled)
    if args.json:
        print_json(evaluation)
        return EXIT_OK
    keys = ("loss", "error", "accuracy", "rmse", "mae", "r2")
    stdout.print(f"{evaluation['task']} on {evaluation['rows']} rows: "
                 f"{metrics_text(evaluation, keys)}", markup=False)
    if evaluation.get("confusion_matrix"):
        stdout.print(_classes_table(evaluation))
    return EXIT_OK


def _classes_table(evaluation: dict) -> Table:
    """Per true class: precision, recall and its confusion matrix row (counts predicted as each)."""
    matrix = evaluation["confusion_matrix"]
    return table(("CLASS", "PRECISION", "RECALL", *(f"->{c}" for c in range(len(matrix)))),
                 ([str(c), _rate(evaluation["precision"][c]), _rate(evaluation["recall"][c]),
                   *map(str, row)] for c, row in enumerate(matrix)))


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def upload_dataset(args, client: Client) -> int:
    """datasets upload FILE [--name N] [--label-column C]"""
    if Path(args.file).suffix.lower() not in (".npz", ".csv"):
        raise UsageError(f"{args.file}: upload a .npz (x, y) or .csv file")
    if args.label_column and not args.file.lower().endswith(".csv"):
        raise UsageError("--label-column applies to .csv files only")
    try:
        dataset = client.upload_dataset(path=args.file, name=args.name,
                                        label_column=args.label_column)
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    if args.json:
        print_json(dataset)
    else:
        stdout.print(f"uploaded dataset {dataset['id']}: {dataset['n_rows']} rows, "
                     f"{dataset['n_features']} features, {dataset['n_classes']} classes",
                     markup=False)
    return EXIT_OK


def list_datasets(args, client: Client) -> int:
    """datasets list"""
    return print_items(client.list_datasets(), args.json,
                       ("ID", "NAME", "ROWS", "FEATURES", "CLASSES", "BYTES", "CREATED"),
                       lambda d: [d["id"], d["name"] or "", str(d["n_rows"]),
                                  str(d["n_features"]), str(d["n_classes"]),
                                  str(d["size_bytes"]), when(d["created_at"])])


def delete_dataset(args, client: Client) -> int:
    """datasets delete ID"""
    client.delete_dataset(args.dataset_id)
    if args.json:
        print_json({"deleted": args.dataset_id})
    else:
        stdout.print(f"deleted dataset {args.dataset_id}", markup=False)
    return EXIT_OK
