"""Group commit: the work of many concurrent requests in one database transaction.

A thread takes all the work waiting, runs each piece in a savepoint of one transaction and
commits once, so a burst of alarms pays for one commit (and one round of Django's request
handling is spared, see alarms/ingest/fast_path.py); the pieces see one configuration
(`config_cache.one_version`), and their timeline entries and figures are written at once
(core/deferred_writes.py). A piece's result is released only after that commit: nobody is told
an alarm was stored before it was. A piece that fails rolls back alone (its savepoint) and gets
its own exception, unless the database picked it as a deadlock's victim: then it runs again
alone once the group has committed, as it would if the whole transaction were rolled back
(every piece then runs again alone, in a transaction of its own, so each gets the answer it
would have had without the others); if the database is away, each gets that error.

Two threads take turns, each with its own connection: while one waits for the database, the
other runs its group. A raise of a key that the other group has just written waits for that
commit, as any two writers do.
"""

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future

from django.db import close_old_connections, transaction

from alarms.timeline import written_together
from core import config_cache
from observability import instruments

log = logging.getLogger(__name__)


class GroupCommitter:
    def __init__(self, most: int = 100, threads: int = 2):
        self.most = most  # pieces in one transaction, at most
        self._waiting: queue.SimpleQueue = queue.SimpleQueue()
        for n in range(threads):
            threading.Thread(target=self._serve, name=f"group-commit-{n}", daemon=True).start()

    async def run(self, work):
        """`work()` in the next group; what it returned (or raised) once the group committed."""
        future: Future = Future()
        self._waiting.put((work, future))
        return await asyncio.wrap_future(future)

    def _serve(self) -> None:
        while True:
            group = [self._waiting.get()]
            while len(group) < self.most:
                try:
                    group.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            self._commit(group)

    def _commit(self, group: list) -> None:
        try:
            with config_cache.one_version(), instruments.together(), transaction.atomic():
                with written_together():
                    outcomes = [_outcome(work) for work, _ in group]
        except Exception as exc:  # noqa: BLE001 (the group could not commit)
            if _rolled_back(exc):  # by the database (a deadlock): each piece on its own
                log.warning("a group of %d was rolled back (%s); each runs alone", len(group), exc)
                outcomes = [_outcome(work) for work, _ in group]
            else:  # the database is away: so it is for each piece
                outcomes = [(None, exc)] * len(group)
        finally:
            close_old_connections()  # as after each request
        # A piece the database picked as a deadlock's victim lost only its savepoint, and the
        # other writer has gone on since: it runs again alone, not answered 503.
        outcomes = [
            _outcome(work) if error is not None and _rolled_back(error) else (result, error)
            for (work, _), (result, error) in zip(group, outcomes, strict=True)
        ]
        for (_, future), (result, error) in zip(group, outcomes, strict=True):
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


def _rolled_back(exc: Exception) -> bool:
    """Whether PostgreSQL rolled the transaction back (SQLSTATE class 40: a deadlock, a
    serialization failure), which a retry alone may not meet."""
    return str(getattr(exc.__cause__, "sqlstate", "") or "").startswith("40")


def _outcome(work) -> tuple[object, BaseException | None]:
    """Run `work()` in a transaction of its own, a savepoint inside the group's."""
    try:
        with instruments.together(), transaction.atomic(), written_together():
            return work(), None
    except Exception as exc:  # noqa: BLE001 (handed to the piece's caller)
        return None, exc
