"""What every client command shares: server options, the client, output, and one-line errors."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Iterable, Sequence

from rich.console import Console
from rich.table import Table

from ..client import Client, ConnectionFailed, NeedleServiceError, ValidationError

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 3
Handler = Callable[[argparse.Namespace, Client], int]

def _console(**options) -> Console:
    console = Console(highlight=False, soft_wrap=True, **options)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # a pipe or a file: do not squeeze tables into 80 columns
    return console


stdout = _console()
stderr = _console(stderr=True)


class UsageError(Exception):
    """A mistake in what the user asked for (exit 2, one line, no traceback)."""


def server_options() -> argparse.ArgumentParser:
    """Parent parser: --url, --api-key, --json for every client command."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--url", default=os.environ.get("NEEDLE_URL", DEFAULT_URL),
                        help="server address (env NEEDLE_URL; default %(default)s)")
    parent.add_argument("--api-key", default=os.environ.get("NEEDLE_API_KEY"),
                        help="API key (env NEEDLE_API_KEY)")
    parent.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parent


def run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: build the client, turn every expected error into one line + exit code."""
    def command(args: argparse.Namespace) -> int:
        try:
            with Client(args.url, api_key=args.api_key) as client:
                return handler(args, client)
        except ValidationError as exc:
            return _fail(args, exc, "invalid request:", exc.lines(), EXIT_USAGE)
        except ConnectionFailed as exc:
            return _fail(args, exc, f"cannot reach the server at {args.url}: {exc}", [],
                         EXIT_FAILED)
        except NeedleServiceError as exc:
            return _fail(args, exc, _detail_line(exc), [], EXIT_FAILED)
        except UsageError as exc:
            return _fail(args, exc, str(exc), [], EXIT_USAGE)
        except KeyboardInterrupt:
            stderr.print("interrupted (a submitted job keeps running on the server)")
            return 130
    return command


def _detail_line(exc: NeedleServiceError) -> str:
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return f"{type(exc).__name__} (HTTP {exc.status}): {detail}" if exc.status else str(exc)


def _fail(args, exc: Exception, headline: str, lines: list[str], code: int) -> int:
    if args.json:
        payload: dict[str, Any] = {"error": type(exc).__name__, "message": headline}
        if isinstance(exc, NeedleServiceError):
            payload.update(status=exc.status, detail=exc.detail)
        print_json(payload)
    if len(lines) == 1:
        stderr.print(f"error: {headline} {lines[0]}", markup=False)
    else:
        stderr.print(f"error: {headline}", markup=False)
        for line in lines:
            stderr.print(f"  {line}", markup=False)
    return code


def print_json(value: Any) -> None:
    """JSON on stdout (plain print: no console wrapping may split it)."""
    print(json.dumps(value, indent=2, default=str))


def read_json_file(path: str) -> Any:
    """A JSON document from a file (or stdin for "-"), or a UsageError naming the problem."""
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg}") from None


def metrics_text(values: dict[str, Any] | None, keys: tuple[str, ...] | None = None) -> str:
    """"train_loss 0.0390  val_error 0.0000" from a result or metric values dict."""
    if not values:
        return ""
    parts = []
    for key, value in values.items():
        if keys is not None and key not in keys:
            continue
        if isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        elif isinstance(value, (int, str)):
            parts.append(f"{key} {value}")
    return "  ".join(parts)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A borderless table of string cells (the look of every client command's table)."""
    out = Table(*headers, box=None)
    for row in rows:
        out.add_row(*row)
    return out


def print_items(items: list[dict[str, Any]], as_json: bool, headers: Sequence[str],
                row: Callable[[dict[str, Any]], Sequence[str]]) -> int:
    """A listing: the items as JSON, or one table row per item; EXIT_OK."""
    if as_json:
        print_json(items)
    else:
        stdout.print(table(headers, map(row, items)))
    return EXIT_OK


def when(timestamp: str) -> str:
    """'2026-12-01T21:50:08.47Z' -> '2026-12-01 21:50:08' (UTC)."""
    return timestamp[:19].replace("T", " ")
