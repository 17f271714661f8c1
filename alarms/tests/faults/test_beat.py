"""Beat under faults: stopped while escalations are due and started again, and two beat
processes running at once. Countdown tasks are kept out of the way (ESCALATION_COUNTDOWN_MAX),
so the sweeper beat drives is what runs the steps."""

import time

import pytest
from django.db.models import Max
from django.utils import timezone

from alarms.models import Alarm, AlarmEvent

from .checks import settle, tally, wait_for
from .test_workers import ESCALATE
from .traffic import accepted, burst

pytestmark = pytest.mark.postgres


def _sweeps_sent(beat) -> int:
    return beat.log().count("Sending due task escalation-sweep")


def test_two_beat_processes_at_once_run_every_step_once(
    stack, mail_sink, hook_sink, escalation, report
):
    stack.configure(ESCALATION_COUNTDOWN_MAX=0)
    token = escalation(
        [(1, 1, [hook_sink.url("beats-1")]), (1, 1, []), (1, 0, [hook_sink.url("beats-3")])]
    )
    web, worker = stack.web(), stack.worker()
    beats = [stack.beat("beat-a"), stack.beat("beat-b")]
    stack.wait_ready(web, worker, *beats)

    alarm_ids = accepted(burst(stack.url, token, 30))
    settle(alarm_ids, [mail_sink, hook_sink], timeout=30)

    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=3)
    sweeps = [_sweeps_sent(beat) for beat in beats]
    countdowns = len(worker.task_results(ESCALATE))
    result.counts["sweeps sent by each beat"] = " + ".join(map(str, sweeps))
    result.counts["countdown tasks"] = countdowns
    if not all(sweeps) or countdowns:
        result.problems.append("the steps were not run by two beats' sweeps alone")
    report("two beat processes at once", result)


def test_steps_due_while_beat_is_stopped_run_once_when_it_starts_again(
    stack, mail_sink, hook_sink, escalation, report
):
    # Step 1 goes by its countdown task (no delay), step 2 (1 s later) is left to the sweeper.
    stack.configure(ESCALATION_COUNTDOWN_MAX=0)
    token = escalation([(0, 1, [hook_sink.url("beat-1")]), (1, 1, [hook_sink.url("beat-2")])])
    web, worker, beat = stack.web(), stack.worker(), stack.beat()
    stack.wait_ready(web, worker, beat)
    beat.stop()

    alarm_ids = accepted(burst(stack.url, token, 20))
    alarms = Alarm.objects.filter(pk__in=alarm_ids)
    wait_for(lambda: alarms.filter(current_step=0).count() == len(alarm_ids), timeout=20)
    last_due = alarms.aggregate(Max("next_escalation_at"))["next_escalation_at__max"]
    time.sleep(max(0.0, last_due.timestamp() - time.time()) + 1)
    due = Alarm.objects.filter(pk__in=alarm_ids, next_escalation_at__lte=timezone.now()).count()
    ran_meanwhile = AlarmEvent.objects.filter(
        alarm_id__in=alarm_ids, kind="step_notified", detail__step=1
    ).count()
    restarted = time.monotonic()
    stack.wait_ready(stack.beat("beat-again"))
    settle(alarm_ids, [mail_sink, hook_sink], timeout=30)
    caught_up = time.monotonic() - restarted

    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2)
    result.counts["overdue while beat was stopped"] = due
    result.counts["run meanwhile"] = ran_meanwhile
    result.counts["caught up after start"] = f"{caught_up:.1f} s"
    if due != len(alarm_ids) or ran_meanwhile:
        result.problems.append("the second steps were not all left waiting for beat")
    report("beat stopped while escalations are due, then started", result)
