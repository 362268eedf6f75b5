"""Who is calling: API keys (Authorization: Bearer), checked once per request by a middleware.

With auth off (the default on loopback) every request acts as one admin-like default principal
of the default tenant, so a local server works exactly as before keys existed.
"""
import ipaddress
import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..jobs import DEFAULT_TENANT, ApiKey, JobStore
from ..jobs.keys import hash_token
from ..settings import Settings
from .ratelimit import RateLimiter, retry_after_header

REALM = 'Bearer realm="needle-service"'
# "/" is exact (the redirect to /ui/); /ui and /static hold only the dashboard's and the docs'
# static files: their data requests carry the key
ALWAYS_OPEN = ("/healthz", "/", "/ui", "/static")
DOC_PATHS = ("/docs", "/redoc", "/openapi.json")
CACHE_LIMIT = 10_000  # cached lookups (valid or not) before the cache starts afresh


@dataclass(frozen=True)
class Principal:
    """The caller: its tenant, whether it is an admin, and the key (None with auth off)."""

    tenant: str
    admin: bool
    key: ApiKey | None = None

    @property
    def key_name(self) -> str | None:
        return None if self.key is None else self.key.name

    @property
    def tenant_filter(self) -> str | None:
        """What store reads take as `tenant`: None (everything) for admins."""
        return None if self.admin else self.tenant

    def limit(self, name: str):
        """A quota of the key (None: no limit; admins and the default principal have none)."""
        return None if self.admin or self.key is None else getattr(self.key, name)

    @classmethod
    def of(cls, key: ApiKey) -> "Principal":
        return cls(tenant=key.tenant, admin=key.admin, key=key)


DEFAULT_PRINCIPAL = Principal(tenant=DEFAULT_TENANT, admin=True)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def auth_required(settings: Settings) -> bool:
    """Whether requests need a key: `auth`, with auto meaning "unless bound to loopback"."""
    if settings.auth == "auto":
        return not is_loopback(settings.host)
    return settings.auth == "required"


def open_paths(settings: Settings) -> tuple[str, ...]:
    """Path prefixes served without a key when auth is required."""
    paths = list(ALWAYS_OPEN)
    if settings.public_readyz:
        paths.append("/readyz")
    if settings.public_docs:
        paths += DOC_PATHS
    if settings.public_metrics:
        paths.append("/metrics")
    return tuple(paths)


class KeyCache:
    """Key lookups by token hash, trusted for `ttl` seconds (revocations bite within that)."""

    def __init__(self, ttl: float, clock=time.monotonic):
        self.ttl, self._clock = ttl, clock
        self._entries: dict[str, tuple[ApiKey | None, float]] = {}

    async def lookup(self, store: JobStore, token: str) -> ApiKey | None:
        """The key of this token (None if unknown), from the cache or the store."""
        token_hash = hash_token(token)
        now = self._clock()
        hit = self._entries.get(token_hash)
        if hit is not None and hit[1] > now:
            return hit[0]
        if store.local_reads:
            key = store.find_key(token_hash)
        else:
            key = await run_in_threadpool(store.find_key, token_hash)
        if self.ttl > 0:
            if len(self._entries) >= CACHE_LIMIT:  # random tokens must not grow memory
                self._entries.clear()
            self._entries[token_hash] = (key, now + self.ttl)
        return key


class AuthMiddleware:
    """Pure ASGI middleware: puts the Principal in scope["state"]["principal"], or answers 401
    (no, unknown or revoked key) or 429 (the key's rate limit) before the app sees the request."""

    def __init__(self, app: ASGIApp, *, settings: Settings):
        self.app = app
        self.required = auth_required(settings)
        self.open = open_paths(settings)
        self.keys = KeyCache(settings.auth_cache_seconds)
        self.rates = RateLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        principal, refusal = DEFAULT_PRINCIPAL, None
        if self.required and not self._is_open(scope["path"]):
            principal, refusal = await self._authenticate(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _is_open(self, path: str) -> bool:
        return any(path == p or (p != "/" and path.startswith(p + "/")) for p in self.open)

    async def _authenticate(self, scope: Scope) -> tuple[Principal | None, JSONResponse | None]:
        token = _bearer_token(scope)
        if token is None:
            return None, _unauthorized("missing API key: send Authorization: Bearer <key>", REALM)
        key = await self.keys.lookup(scope["app"].state.store, token)
        if key is None or not key.active:
            reason = "unknown API key" if key is None else f"API key {key.name!r} was revoked"
            return None, _unauthorized(reason, f'{REALM}, error="invalid_token"')
        principal = Principal.of(key)
        rate = principal.limit("rate_limit")
        if rate is not None:
            wait = self.rates.acquire(key.name, rate)
            if wait > 0:
                return None, JSONResponse(
                    {"detail": f"rate limit of {rate:g} requests per second exceeded for key "
                               f"{key.name!r}"}, status_code=429,
                    headers={"Retry-After": retry_after_header(wait)})
        return principal, None


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _unauthorized(detail: str, challenge: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": challenge})
