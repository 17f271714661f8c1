"""Sending to a channel-layer group from sync code (tasks, views, signal handlers).

async_to_sync would run each send on a new event loop in a Celery worker, and channels_redis
opens a Redis connection per loop: one long-lived loop per process keeps its connection.
"""

import asyncio
import os
import threading

from channels.layers import get_channel_layer

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _lock:
        # A forked child (a prefork worker) has the parent's loop object but not its thread.
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="channel-layer", daemon=True).start()
        return _loop


def group_send(group: str, message: dict, timeout: float = 2.0) -> None:
    """Send and wait for the layer to take it; raises on failure or after `timeout` seconds."""
    send = get_channel_layer().group_send(group, message)
    asyncio.run_coroutine_threadsafe(send, _event_loop()).result(timeout)
