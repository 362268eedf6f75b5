"""`needle-service keys create|list|revoke`: API keys in the job store (the token is printed once)."""
import argparse
import re
import sys
import time

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
QUOTAS = (("max_active_jobs", "max active jobs"), ("max_dataset_bytes", "max dataset bytes"),
          ("max_priority", "max priority"), ("rate_limit", "requests/s"),
          ("max_job_cost", "max job cost"))


def _name(text: str) -> str:
    if not NAME_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError("1-64 letters, digits, '.', '_' or '-', starting with a "
                                         "letter or digit")
    return text


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def add_keys_parser(commands, add_store_options) -> None:
    """The `keys` command and its subcommands."""
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="make a key; prints it once, alone on the last line")
    create.add_argument("--name", type=_name, required=True, help="unique name of the key")
    create.add_argument("--tenant", type=_name, help="tenant the key acts for (default: its name)")
    create.add_argument("--admin", action="store_true",
                        help="sees every tenant's jobs and datasets; no quotas, no rate limit")
    create.add_argument("--max-active-jobs", type=_count, help="queued + running jobs (429 beyond)")
    create.add_argument("--max-dataset-bytes", type=_count, help="stored dataset bytes (413 beyond)")
    create.add_argument("--max-priority", type=int, default=0, help="highest job priority (default 0)")
    create.add_argument("--rate-limit", type=_rate, help="requests per second, bursts up to the same")
    create.add_argument("--max-job-cost", type=_rate, help="largest estimated training cost of a "
                        "job, in FLOPs (422 beyond)")
    add_store_options(create)
    listing = actions.add_parser("list", help="every key with its tenant, quotas and state")
    add_store_options(listing)
    revoke = actions.add_parser("revoke", help="revoke a key (API processes notice within "
                                "NEEDLE_AUTH_CACHE_SECONDS)")
    revoke.add_argument("name")
    add_store_options(revoke)


def run_keys(args: argparse.Namespace, settings) -> int:
    """Run one keys subcommand against the configured store."""
    from .jobs import ApiKey, Conflict, NotFound
    from .jobs.backends import open_store
    from .jobs.keys import hash_token, new_token
    store = open_store(settings)
    try:
        if args.keys_command == "create":
            token = new_token()
            key = ApiKey(name=args.name, tenant=args.tenant or args.name, admin=args.admin,
                         max_active_jobs=args.max_active_jobs,
                         max_dataset_bytes=args.max_dataset_bytes, max_priority=args.max_priority,
                         rate_limit=args.rate_limit, max_job_cost=args.max_job_cost,
                         created_at=time.time())
            try:
                store.create_key(key, hash_token(token))
            except Conflict as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"created {describe(key)}")
            print("this is the only time the key is shown; it is stored as a hash:")
            print(token)
        elif args.keys_command == "list":
            for key in store.list_keys():
                print(describe(key))
        else:
            try:
                key = store.revoke_key(args.name)
            except NotFound as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"revoked {describe(key)}")
        return 0
    finally:
        store.close()


def describe(key) -> str:
    """One line: name, tenant, role, quotas, state."""
    if key.admin:
        limits = "admin (all tenants, no limits)"
    else:
        limits = ", ".join(f"{label} {getattr(key, field):g}" for field, label in QUOTAS
                           if getattr(key, field) is not None) or "no limits"
    state = "active" if key.active else "revoked " + time.strftime(
        "%Y-%m-%d %H:%M:%SZ", time.gmtime(key.revoked_at))
    return f"key {key.name!r} tenant {key.tenant!r}: {limits}; {state}"
