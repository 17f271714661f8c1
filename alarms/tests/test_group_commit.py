"""Group commit against the real database: pieces that arrive together share one transaction,
and a piece that fails rolls back alone, with what it recorded."""

import asyncio
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction

from alarms.ingest.group_commit import GroupCommitter
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import record
from devices.models import Site

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(works: list) -> list:
    """Each work through one committer, all at once; what each returned or raised."""
    committer = GroupCommitter()

    async def submit():
        return await asyncio.gather(*(committer.run(w) for w in works), return_exceptions=True)

    return asyncio.run(submit())


def transaction_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_current()")  # the whole transaction's, even in a savepoint
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_pieces_that_arrive_while_a_group_commits_share_the_next_transaction():
    def slow():
        time.sleep(0.3)  # the others arrive meanwhile
        return transaction_id()

    ids = run_together([slow] + [transaction_id] * 29)

    assert len(set(ids)) <= 3
    assert max(ids.count(i) for i in set(ids)) >= 20


def test_a_piece_that_fails_rolls_back_alone_and_gets_its_error():
    Site.objects.create(name="HQ")

    def add(name):
        return lambda: Site.objects.create(name=name).name

    results = run_together([add("North"), add("HQ"), add("South")])  # HQ exists: unique name

    assert results[0] == "North" and results[2] == "South"
    assert isinstance(results[1], IntegrityError)
    assert sorted(Site.objects.values_list("name", flat=True)) == ["HQ", "North", "South"]


def test_a_piece_that_fails_leaves_none_of_its_timeline_while_the_others_keep_theirs():
    alarm = Alarm.objects.create(source="api", dedup_key="k", title="Boiler")

    def note(text, fail=False):
        def work():
            record(alarm, AlarmEvent.Kind.UPDATED, text)
            if fail:
                raise ValueError("after its entry was recorded")
            return text

        return work

    results = run_together([note("first"), note("broken", fail=True), note("third")])

    assert results[0] == "first" and results[2] == "third"
    assert isinstance(results[1], ValueError)
    texts = AlarmEvent.objects.filter(alarm=alarm).values_list("text", flat=True)
    assert sorted(texts) == ["first", "third"]


@pytest.mark.postgres
def test_a_piece_picked_as_a_deadlocks_victim_runs_again_alone_once_its_group_committed():
    north, south = Site.objects.create(name="North"), Site.objects.create(name="South")
    holding, other_failed = threading.Event(), []

    def other_writer():  # locks North, then wants South, which the piece holds
        try:
            with transaction.atomic():
                Site.objects.filter(pk=north.pk).update(address="other")
                holding.set()
                time.sleep(0.5)  # the piece waits for North by now, and started waiting first
                Site.objects.filter(pk=south.pk).update(address="other")
        except Exception as exc:  # noqa: BLE001 (the test says which side the database chose)
            other_failed.append(exc)
        finally:
            connection.close()

    def piece():  # locks South, then wants North: PostgreSQL finds the deadlock on its side
        Site.objects.filter(pk=south.pk).update(address="piece")
        holding.wait(5)
        Site.objects.filter(pk=north.pk).update(address="piece")
        return "stored"

    other = threading.Thread(target=other_writer)
    other.start()
    holding.wait(5)
    results = run_together([piece])
    other.join(10)

    assert other_failed == []  # the piece was the victim: its savepoint was rolled back
    assert results == ["stored"]  # then it ran again, after the other writer had committed
    assert set(Site.objects.values_list("address", flat=True)) == {"piece"}
