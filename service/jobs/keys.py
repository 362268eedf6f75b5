"""API key tokens: high-entropy random strings, stored only as their SHA-256 hash."""
import hashlib
import secrets

TOKEN_PREFIX = "nsk_"  # recognisable in logs and secret scanners


def new_token() -> str:
    """A fresh secret token (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the store keeps and looks keys up by. A plain hash suffices: the token is random, not
    a password, so it cannot be guessed from a dictionary, and a lookup by hash leaks no timing
    that helps guess a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
