"""PostgreSQL restarted during a stream of alarms: devices are answered 503 while it is down and
try again; nothing answered 200/201 is lost, and every step runs once it is back. The run's
own private cluster is restarted (make faults), never the machine's shared server."""

import time

import pytest
from django.db import connection

from .checks import settle, tally
from .traffic import Stream, accepted, answers

pytestmark = pytest.mark.postgres

DOWN_SECONDS = 10


@pytest.mark.faults
def test_postgres_restarted_during_a_stream_loses_no_accepted_alarm(
    private_postgres, stack, mail_sink, hook_sink, escalation, report
):
    if private_postgres is None:
        pytest.skip("needs --faults and a PostgreSQL server installed to run a private cluster")
    token = escalation([(0, 1, [hook_sink.url("pg-1")]), (5, 1, [])])
    stack.start()

    stream = Stream(stack.url, token, per_second=3, patience=60).start()
    time.sleep(10)
    private_postgres.stop()
    time.sleep(DOWN_SECONDS)
    private_postgres.start()
    time.sleep(15)
    raises = stream.stop()
    connection.close()  # this process's own session ended with the restart
    alarm_ids = accepted(raises)
    settle(alarm_ids, [mail_sink, hook_sink], timeout=90)

    # A worker's send that the database could not record is sent again (at-least-once).
    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2, resends_allowed=2)
    refused = sum(r.answers.count(503) for r in raises)
    others = [a for r in raises for a in r.answers if a not in (200, 201, 503)]
    result.counts["answers"] = answers(raises)
    result.counts["never accepted"] = sum(1 for r in raises if not r.alarm_id)
    if not refused:
        result.problems.append("no device was answered 503: the database was never missed")
    if others:
        result.problems.append(f"answers other than 200/201/503: {sorted(set(others), key=str)}")
    if result.counts["never accepted"]:
        result.problems.append("a device that kept trying was never accepted")
    report("PostgreSQL restarted during a trigger stream", result)
