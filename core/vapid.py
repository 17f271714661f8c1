"""The broker's VAPID key pair, which signs every Web Push request: VAPID_PRIVATE_KEY (PEM)
from the environment, else one generated at first start and kept under var/ (every process of
one machine reads the same file; nodes of a cluster need the same key in their environment,
or browsers' subscriptions made through one node are refused through another)."""

import base64
import os
from functools import cache

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from py_vapid import Vapid02

FILE_NAME = "vapid_private.pem"


@cache
def key() -> Vapid02:
    pem = settings.VAPID_PRIVATE_KEY
    if not pem:
        path = settings.VAR_DIR / FILE_NAME
        if not path.exists():
            made = Vapid02()
            made.generate_keys()
            # Written whole under a name of its own, then linked: a process that reads the
            # file finds all of it, and of two made at once the first linked wins.
            draft = path.with_name(f"{FILE_NAME}.{os.getpid()}")
            descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(made.private_pem())
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process made it first: every process uses that one
            finally:
                draft.unlink()
        pem = path.read_text()
    return Vapid02.from_pem(pem.encode())


def public_key() -> str:
    """The application server key a browser subscribes with (base64url, uncompressed point)."""
    raw = key().public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
