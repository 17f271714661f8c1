"""Configuration each process keeps in memory: routing rules, policies' steps, devices by token.

A number in Redis changes once any configuration change has committed, and a process that sees
a new number reads again (one GET per use). It also reads again at least every MAX_AGE seconds,
in case a change could not bump the number (Redis away at the time). The number is bumped after
commit: bumped before, another process could read the old rows and keep them as new.
"""

import time
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar

import redis
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from core.redis_client import client

VERSION_KEY = "config:version"
MAX_AGE = 30.0
_kept: dict[str, tuple] = {}  # name -> (version, read at, what was read)
_version: ContextVar = ContextVar("config_version", default=None)  # inside `one_version`


def kept(name: str, read: Callable):
    """This process's copy of `read()`, read again once the configuration changed. What it
    returns is shared by every thread: treat it as read-only (a dict may be filled in)."""
    try:
        version = _version.get() or client().get(VERSION_KEY)
    except redis.RedisError:
        return read()
    entry = _kept.get(name)
    if entry is None or entry[0] != version or time.monotonic() - entry[1] > MAX_AGE:
        entry = _kept[name] = (version, time.monotonic(), read())
    return entry[2]


@contextmanager
def one_version():
    """Inside, every use asks for the configuration's number once: work done together (a group
    of raises, a batch of steps) sees one configuration, for one Redis round trip."""
    try:
        token = _version.set(client().get(VERSION_KEY))
    except redis.RedisError:
        token = _version.set(None)  # each use reads the configuration itself
    try:
        yield
    finally:
        _version.reset(token)


def forget() -> None:
    _kept.clear()


def changed(**kwargs) -> None:
    """A configuration row changed (a signal receiver): forget it here at once, and in every
    process once the change is committed."""
    forget()
    transaction.on_commit(_bump)


def watch(*models, through=()) -> None:
    """What is kept is read from these models (and these many-to-many tables): any change to
    them is a configuration change."""
    for model in models:
        post_save.connect(changed, sender=model, dispatch_uid=f"kept-{model.__name__}")
        post_delete.connect(changed, sender=model, dispatch_uid=f"kept-{model.__name__}")
    for table in through:
        m2m_changed.connect(changed, sender=table, dispatch_uid=f"kept-{table.__name__}")


def _bump() -> None:
    forget()
    try:
        client().incr(VERSION_KEY)
    except redis.RedisError:
        pass  # other processes notice within MAX_AGE
