"""Which worker processes are alive: each renews a short-lived key in Redis from a thread of
its own, so what a dead one had taken (the message it was sending) goes back to the others
within seconds of its death, not a lease later.

A process counts as dead once its key has been missing for CONFIRM_SECONDS: after Redis came
back empty every living process has written its key again by then, so a lost key alone never
makes a living process look dead (which would send its messages twice).
"""

import logging
import os
import secrets
import socket
import threading
import time

import redis

from core.redis_client import client, connect

log = logging.getLogger(__name__)

RENEW_SECONDS = 1.0
ALIVE_SECONDS = 4  # a key not renewed for this long is gone
CONFIRM_SECONDS = 3.0  # ...and it must stay gone this long
REGISTRY = "alarmbroker:workers"  # every reporting process, so an idle one's death is seen too

_name = ""


def process_name() -> str:
    """This process's name while it reports itself alive; '' in any other process (the web,
    a command, a test), whose work only a lease hands back."""
    return _name


def _alive_key(name: str) -> str:
    return f"alarmbroker:alive:{name}"


def _missing_key(name: str) -> str:
    return f"alarmbroker:missing:{name}"


def renew_forever(what: str, write, every: float) -> None:
    """From a daemon thread, call `write(redis client)` every `every` seconds, with a Redis of
    its own configured now (a forked process must not share its parent's connection)."""
    reporter = connect(socket_timeout=2, socket_connect_timeout=2)

    def renew():
        while True:
            try:
                write(reporter)
            except redis.RedisError:
                log.warning("could not report %s alive (Redis down)", what)
            time.sleep(every)

    threading.Thread(target=renew, name=f"alive-{what}", daemon=True).start()


def keep_reporting() -> None:
    """This worker process is alive, from now on; its name holds a random part, so a process
    restarted with the same host name and pid (a container's) is not taken for the dead one."""
    global _name
    _name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    name = _name

    def write(reporter):
        with reporter.pipeline(transaction=False) as pipe:
            pipe.set(_alive_key(name), 1, px=ALIVE_SECONDS * 1000).sadd(REGISTRY, name).execute()

    renew_forever(name, write, RENEW_SECONDS)


def stop_reporting() -> None:
    """A clean exit: this process is gone, and nothing of its needs handing back."""
    if not _name:
        return
    try:
        client().pipeline().delete(_alive_key(_name)).srem(REGISTRY, _name).execute()
    except redis.RedisError:
        log.warning("could not say %s stopped; it is seen gone in seconds", _name)


def dead(names: set[str]) -> set[str]:
    """Of these processes and every registered one, those gone for CONFIRM_SECONDS; they are
    forgotten, so each death is reported once. Empty when Redis cannot tell."""
    try:
        names = names | {name.decode() for name in client().smembers(REGISTRY)}
        ordered = sorted(names)
        with client().pipeline(transaction=False) as pipe:
            for name in ordered:
                pipe.exists(_alive_key(name))
            alive = pipe.execute()
        missing = [name for name, up in zip(ordered, alive, strict=True) if not up]
        now = time.time()
        with client().pipeline(transaction=False) as pipe:
            for name in missing:
                pipe.set(_missing_key(name), now, nx=True, ex=3600).get(_missing_key(name))
            for name in set(ordered) - set(missing):  # back after a gap: start counting anew
                pipe.delete(_missing_key(name))
            since = pipe.execute()[1 : 2 * len(missing) : 2]
        gone = {name for name, at in zip(missing, since, strict=True)
                if now - float(at) >= CONFIRM_SECONDS}  # fmt: skip
        if gone:
            with client().pipeline(transaction=False) as pipe:
                pipe.srem(REGISTRY, *gone).delete(*(_missing_key(name) for name in gone))
                pipe.execute()
        return gone
    except redis.RedisError:
        return set()
