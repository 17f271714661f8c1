"""Bearer secrets (device tokens, ACK links): 192 random bits, stored only as a SHA-256 hash;
and signed references (a call's callback URL names its delivery), checked without storage."""

import hashlib
import hmac
import secrets

from django.conf import settings


def new_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)


def signed(value: str, purpose: str) -> str:
    """`value` with a MAC of it (by SECRET_KEY, for this purpose): '<value>-<32 hex>'."""
    return f"{value}-{_mac(value, purpose)}"


def unsigned(token: str, purpose: str) -> str | None:
    """The value a `signed` token carries, or None when its MAC does not match."""
    value, _, mac = token.rpartition("-")
    if not value or not hmac.compare_digest(mac.encode(), _mac(value, purpose).encode()):
        return None
    return value


def _mac(value: str, purpose: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
