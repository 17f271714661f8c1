"""Writing many small things at once: what a block records is handed over in one call as it ends.

A group of raises, a batch of steps or of sent messages records a timeline entry and a few
figures for each alarm; written one by one, that is a statement (or a Redis round trip) each.
Inside `block()`, `add` keeps them instead, and the outermost block hands them all to `write`
as it ends without an error. An inner block that raises drops what it added, so a piece of a
group that fails (and whose savepoint is rolled back) leaves nothing behind.
"""

import threading
from collections.abc import Callable
from contextlib import contextmanager


class Together:
    def __init__(self, write: Callable[[list], None]):
        self._write = write
        self._local = threading.local()

    def add(self, *items) -> bool:
        """Keep `items` for the block's end; False outside a block (the caller writes them)."""
        waiting = getattr(self._local, "waiting", None)
        if waiting is None:
            return False
        waiting.extend(items)
        return True

    @contextmanager
    def block(self):
        waiting = getattr(self._local, "waiting", None)
        if waiting is not None:  # nested: the outer block writes
            mark = len(waiting)
            try:
                yield
            except BaseException:
                del waiting[mark:]
                raise
            return
        self._local.waiting = waiting = []
        try:
            yield
        finally:
            self._local.waiting = None
        if waiting:
            self._write(waiting)
