"""API key tokens: high-entropy random strings, stored only as their SHA-256 hash."""
import hashlib
import secrets
import time

from .records import ApiKey
from .store import Conflict, JobStore

TOKEN_PREFIX = "nsk_"  # recognisable in logs and secret scanners
MIN_ADMIN_KEY_LENGTH = 32  # a key chosen by an operator (NEEDLE_ADMIN_KEY) must not be guessable


def new_token() -> str:
    """A fresh secret token (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the store keeps and looks keys up by. A plain hash suffices: the token is random, not
    a password, so it cannot be guessed from a dictionary, and a lookup by hash leaks no timing
    that helps guess a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def ensure_admin_key(store: JobStore, token: str) -> ApiKey:
    """Make sure an admin key with this token exists (deployments pass one in the environment).
    It is named after its hash, so a rotated token adds a new key: revoke the old one by name."""
    token_hash = hash_token(token)
    existing = store.find_key(token_hash)
    if existing is not None:
        return existing
    name = f"env-admin-{token_hash[:12]}"
    key = ApiKey(name=name, tenant="admin", admin=True, created_at=time.time())
    try:
        return store.create_key(key, token_hash)
    except Conflict:  # another API process created it at the same moment
        return store.find_key(token_hash)
