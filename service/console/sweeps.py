"""`sweeps submit FILE [--follow]`, `sweeps show|follow|cancel|delete ID`, `sweeps list`: hyperparameter
sweeps over HTTP through service.client."""
from __future__ import annotations

import argparse
from typing import Any

from ..client import Client
from .common import (EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, UsageError, print_items, print_json,
                     read_json_file, run, server_options, stderr, stdout, table, when)

EXIT_BY_SWEEP_STATUS = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}


def add_sweep_commands(commands: argparse._SubParsersAction) -> None:
    """Register `sweeps` and its actions on the top-level subparsers."""
    common = server_options()
    sweeps = commands.add_parser("sweeps", help="submit, follow, show, list, cancel or delete sweeps")
    actions = sweeps.add_subparsers(dest="action", required=True)
    submit = actions.add_parser("submit", parents=[common], help="submit a sweep spec (JSON)")
    submit.add_argument("spec", metavar="SWEEP.json", help="the sweep spec file ('-' for stdin)")
    submit.add_argument("--follow", action="store_true", help="show progress until every trial "
                        "has ended, then the trials table; exit 0/1/3 for succeeded/failed/cancelled")
    submit.set_defaults(handler=run(submit_sweep))
    listing = actions.add_parser("list", parents=[common], help="sweeps, newest first")
    listing.add_argument("--limit", type=int, default=20, help="at most N sweeps (default 20)")
    listing.set_defaults(handler=run(list_sweeps))
    for name, handler, text in (("show", show_sweep, "a sweep's counts, best trial and trials table"),
                                ("follow", follow_sweep, "progress until every trial has ended"),
                                ("cancel", cancel_sweep, "stop every trial that has not ended"),
                                ("delete", delete_sweep, "delete an ended sweep and its trials")):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("sweep_id", metavar="ID")
        action.set_defaults(handler=run(handler))


def submit_sweep(args, client: Client) -> int:
    """sweeps submit SWEEP.json [--follow]"""
    sweep = client.submit_sweep(read_json_file(args.spec))
    if args.follow:
        if not args.json:
            stdout.print(f"submitted sweep {sweep['id']} ({sweep['n_trials']} trials)", markup=False)
        return _follow(client, sweep["id"], args.json)
    if args.json:
        print_json(sweep)
    else:
        stdout.print(f"submitted sweep {sweep['id']}: {sweep['n_trials']} trials, at most "
                     f"{sweep['max_parallel']} at once", markup=False)
    return EXIT_OK


def follow_sweep(args, client: Client) -> int:
    """sweeps follow ID"""
    return _follow(client, args.sweep_id, args.json)


def _follow(client: Client, sweep_id: str, as_json: bool) -> int:
    """One progress line (stderr) per change, then the table (stdout); the exit status."""
    on_progress = None if as_json else (lambda sweep: stderr.print(progress_line(sweep), markup=False))
    sweep = client.wait_sweep(sweep_id, on_progress=on_progress)
    if as_json:
        print_json(sweep)
    else:
        print_sweep(sweep)
    return EXIT_BY_SWEEP_STATUS[sweep["status"]]


def show_sweep(args, client: Client) -> int:
    """sweeps show ID"""
    sweep = client.get_sweep(args.sweep_id)
    if args.json:
        print_json(sweep)
    else:
        print_sweep(sweep)
    return EXIT_OK


def list_sweeps(args, client: Client) -> int:
    """sweeps list [--limit N]"""
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    return print_items(list(client.list_sweeps(limit=args.limit)), args.json,
                       ("ID", "STATUS", "TRIALS", "OBJECTIVE", "CREATED"),
                       lambda sweep: [sweep["id"], sweep["status"], counts_text(sweep),
                                      f"{sweep['objective']['mode']} {sweep['objective']['metric']}",
                                      when(sweep["created_at"])])


def cancel_sweep(args, client: Client) -> int:
    """sweeps cancel ID"""
    sweep = client.cancel_sweep(args.sweep_id)
    if args.json:
        print_json(sweep)
    else:
        stdout.print(f"sweep {sweep['id']}: cancel requested ({counts_text(sweep)})", markup=False)
    return EXIT_OK


def delete_sweep(args, client: Client) -> int:
    """sweeps delete ID"""
    client.delete_sweep(args.sweep_id)
    if args.json:
        print_json({"deleted": args.sweep_id})
    else:
        stdout.print(f"deleted sweep {args.sweep_id} and its trials", markup=False)
    return EXIT_OK


def counts_text(sweep: dict[str, Any]) -> str:
    """"9 trials: 4 succeeded, 3 pruned, 2 running"."""
    parts = ", ".join(f"{n} {status}" for status, n in sorted(sweep["counts"].items(),
                                                             key=lambda item: -item[1]))
    return f"{sweep['n_trials']} trials: {parts}"


def progress_line(sweep: dict[str, Any]) -> str:
    """A one-line state of a sweep: counts and the best trial so far."""
    best = sweep["best"]
    text = best_text(sweep, best) if best else "no objective yet"
    return f"{sweep['status']}  {counts_text(sweep)}  best: {text}"


def best_text(sweep: dict[str, Any], trial: dict[str, Any]) -> str:
    params = " ".join(f"{path}={_value(value)}" for path, value in trial["params"].items())
    return f"trial {trial['trial']} {sweep['objective']['metric']} {trial['objective']:.4g} ({params})"


def print_sweep(sweep: dict[str, Any]) -> None:
    """Status, counts, best trial and the trials table (the best row marked *)."""
    stdout.print(f"sweep {sweep['id']} {sweep['status']}: {counts_text(sweep)}; "
                 f"total epochs {sweep['total_epochs']}", markup=False)
    best = sweep["best"]
    stdout.print(f"best: {best_text(sweep, best) if best else 'none yet'}", markup=False)
    paths = list(sweep["trials"][0]["params"]) if sweep["trials"] else []

    def row(trial: dict[str, Any]) -> list[str]:
        objective = "" if trial["objective"] is None else f"{trial['objective']:.4g}"
        marker = "*" if best and trial["trial"] == best["trial"] else ""
        return [marker, str(trial["trial"]), trial["status"],
                *[_value(trial["params"].get(path)) for path in paths], objective,
                f"{trial['epochs_run']}/{trial['epochs']}", trial["job_id"]]
    stdout.print(table(("", "TRIAL", "STATUS", *[path.upper() for path in paths],
                        sweep["objective"]["metric"].upper(), "EPOCHS", "JOB"),
                       map(row, sweep["trials"])))


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
