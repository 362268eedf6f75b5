"""needle-service: `serve` the API (with local workers), run a `worker`, manage API `keys`,
write `openapi` JSON; and, as a client of a running server: `submit`, `jobs`, `params`,
`predict`, `datasets`, `sweeps`."""
import argparse
import gc
import os
import sys
from pathlib import Path

from .keys_cli import add_keys_parser, run_keys

# CLI option -> Settings field; explicit options are exported as NEEDLE_* so worker processes
# spawned by `serve` see the same configuration.
SERVE_OPTIONS = ("host", "port", "data_dir", "workers", "database_url", "mnist_dir", "auth")
WORKER_OPTIONS = ("data_dir", "database_url", "mnist_dir")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; every option falls back to NEEDLE_<NAME>, then the default."""
    from .console import EXIT_STATUS
    parser = argparse.ArgumentParser(prog="needle-service", description=__doc__,
                                     epilog=EXIT_STATUS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API and its local worker processes")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="local worker processes (0 = API only; "
                       "default: CPU count)")
    serve.add_argument("--auth", choices=("auto", "required", "off"),
                       help="API keys: auto (default) requires them unless --host is loopback")
    _add_store_options(serve)
    serve.add_argument("--log-level", default="info")

    worker = commands.add_parser("worker", help="run one training worker against the store")
    _add_store_options(worker)
    worker.add_argument("--parent-pid", type=int, help="exit when this process is gone")

    add_keys_parser(commands, _add_store_options)

    openapi = commands.add_parser("openapi", help="write openapi.json, or --check it is current")
    openapi.add_argument("--output", type=Path, default=Path("openapi.json"))
    openapi.add_argument("--check", action="store_true",
                         help="exit 1 if the file differs from the generated schema")

    from .console import add_client_commands  # the client commands (service.client over HTTP)
    add_client_commands(commands)
    return parser


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url", help="postgresql://... (default: SQLite in data dir)")
    parser.add_argument("--mnist-dir", type=Path, help="directory with the MNIST IDX .gz files")


def settings_from(args: argparse.Namespace, names: tuple[str, ...]):
    """Settings with explicit CLI options applied on top of the environment."""
    from .settings import Settings
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"NEEDLE_{name.upper()}"] = str(value)
    return Settings()


def serve(args: argparse.Namespace) -> int:
    """Run uvicorn on the app factory."""
    import uvicorn

    from .api import create_app
    from .api.connections import timed_protocol
    from .api.serving import StreamEndingServer
    settings = settings_from(args, SERVE_OPTIONS)
    refusal = _prepare_keys(settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    app = create_app(settings)
    # FastAPI, pydantic and the routes (~70k objects) live as long as the server: out of the
    # collector's sight, a full collection no longer stalls the event loop for ~40 ms.
    gc.freeze()
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=args.log_level,
                            timeout_graceful_shutdown=10, http=timed_protocol(settings.timeout_header_s),
                            timeout_keep_alive=settings.timeout_keep_alive_s,
                            limit_concurrency=settings.limit_concurrency)
    StreamEndingServer(config, app).run()
    return 0


def _prepare_keys(settings) -> str | None:
    """Create the NEEDLE_ADMIN_KEY key if it is set; then, if auth is required but the store
    holds no active key, why serving must not start."""
    from .api.auth import auth_required
    if not auth_required(settings) and settings.admin_key is None:
        return None
    from .jobs.backends import open_store
    from .jobs.keys import MIN_ADMIN_KEY_LENGTH, ensure_admin_key
    if settings.admin_key is not None and \
            len(settings.admin_key.get_secret_value()) < MIN_ADMIN_KEY_LENGTH:
        return (f"refusing to start: NEEDLE_ADMIN_KEY must be at least {MIN_ADMIN_KEY_LENGTH} "
                "characters (e.g. `openssl rand -hex 32`)")
    store = open_store(settings)
    try:
        if settings.admin_key is not None:
            ensure_admin_key(store, settings.admin_key.get_secret_value())
        if not auth_required(settings) or any(key.active for key in store.list_keys()):
            return None
    finally:
        store.close()
    why = (f"--host {settings.host} is not a loopback address" if settings.auth == "auto"
           else "NEEDLE_AUTH=required")
    return (f"refusing to start: API keys are required ({why}) but none exists. Create one "
            "with the same store options, e.g.\n"
            "  needle-service keys create --name admin --admin"
            + (" --database-url <the same URL>" if settings.database_url
               else f" --data-dir {settings.data_dir}")
            + "\nand send it as `Authorization: Bearer <key>`; or serve on 127.0.0.1, or set "
            "NEEDLE_AUTH=off only where the network itself is trusted.")


def keys(args: argparse.Namespace) -> int:
    """Create, list or revoke API keys."""
    return run_keys(args, settings_from(args, WORKER_OPTIONS))


def worker(args: argparse.Namespace) -> int:
    """Train jobs until SIGTERM (or until the parent server is gone)."""
    from .jobs.worker import run_worker
    run_worker(settings_from(args, WORKER_OPTIONS), parent_pid=args.parent_pid)
    return 0


def openapi(args: argparse.Namespace) -> int:
    """Write the OpenAPI document, or check the committed one is current."""
    from .api.openapi import render_openapi
    text = render_openapi()
    if not args.check:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
        return 0
    current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
    if current == text:
        print(f"{args.output} is up to date")
        return 0
    state = "missing" if current is None else "stale"
    print(f"{args.output} is {state}: run `needle-service openapi` (or `make openapi`) and "
          "commit the result", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = build_parser().parse_args(argv)
    if getattr(args, "handler", None) is not None:  # commands that carry their own handler
        return args.handler(args)
    return {"serve": serve, "worker": worker, "keys": keys, "openapi": openapi}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
