"""Workers under faults: two workers racing on the same escalation, a worker killed with
SIGKILL in the middle of a fan-out, and one killed after a provider took a message but before
it heard so."""

import time

import pytest

from alarms.models import Alarm

from .checks import check_sent_again, receipts, sending, settle, tally, wait_for
from .traffic import accepted, burst

pytestmark = pytest.mark.postgres

ESCALATE = "escalation.tasks.escalate"
SWEEP = "escalation.tasks.sweep"


def _due_steps(alarm_ids) -> list[tuple[str, str, object]]:
    return list(
        Alarm.objects.filter(pk__in=alarm_ids, next_escalation_at__isnull=False).values_list(
            "pk", "escalation_token", "next_escalation_at"
        )
    )


def _duplicate(stack, steps, copies: int) -> None:
    """Each step's countdown task `copies` more times, and sweeps, all due at the step's time."""
    for alarm_id, token, due in steps:
        for _ in range(copies):
            stack.send_task(ESCALATE, str(alarm_id), str(token), eta=due)
    for _ in range(copies * 2):
        stack.send_task(SWEEP, eta=min(due for _, _, due in steps))


def test_two_workers_racing_on_the_same_escalation_run_each_step_once(
    stack, mail_sink, hook_sink, escalation, report
):
    # Step 1 waits a second, so every alarm's token is known before its step is due.
    token = escalation([(1, 2, [hook_sink.url("race-1")]), (2, 1, [hook_sink.url("race-2")])])
    web, first, second = stack.web(), stack.worker("worker-a"), stack.worker("worker-b")
    stack.beat()
    stack.wait_ready(web, first, second)

    alarm_ids = accepted(burst(stack.url, token, 30))
    _duplicate(stack, _due_steps(alarm_ids), copies=3)

    alarms = Alarm.objects.filter(pk__in=alarm_ids)
    wait_for(lambda: alarms.filter(current_step=0).count() == len(alarm_ids), timeout=20)
    _duplicate(stack, _due_steps(alarm_ids), copies=3)
    settle(alarm_ids, [mail_sink, hook_sink], timeout=30)

    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2)
    ran = {worker.name: worker.task_results(ESCALATE) for worker in (first, second)}
    result.counts["escalate tasks that ran a step"] = " + ".join(
        str(outcomes.count("True")) for outcomes in ran.values()
    )
    result.counts["that found it taken"] = " + ".join(
        str(outcomes.count("False")) for outcomes in ran.values()
    )
    # Each worker took tasks for the same steps at the same moment: that is the race. Which of
    # them runs the steps is up to timing: one task may take every step overdue at once.
    if not all(ran.values()):
        result.problems.append("one worker got none of the steps' tasks: the race did not happen")
    report("two workers racing on the same escalation", result)


@pytest.mark.faults
def test_a_worker_killed_mid_fan_out_loses_nothing_and_resends_only_what_was_in_flight(
    stack, mail_sink, hook_sink, escalation, report
):
    hook_sink.delay = 0.02  # posts take a moment: some are in flight when the worker dies
    hooks = [hook_sink.url(f"kill-{n}") for n in range(3)]
    token = escalation([(0, 5, hooks), (5, 2, hooks[:1])])
    web, doomed, survivor = stack.web(), stack.worker("doomed"), stack.worker("survivor")
    stack.beat()
    stack.wait_ready(web, doomed, survivor)
    doomed_pids = doomed.pids()

    alarm_ids = accepted(burst(stack.url, token, 40))
    sinks = [mail_sink, hook_sink]
    wait_for(lambda: len(receipts(sinks)) >= 100, timeout=30)
    before = len(receipts(sinks))
    doomed.kill()
    killed_at = time.time()
    in_flight = sending(doomed_pids, alarm_ids)
    # What the dead worker was sending goes again once its processes are seen dead (seconds),
    # not when its lease (3 x timeout + 30 s) runs out.
    settle(alarm_ids, sinks, timeout=60)

    # Each of its two pool processes may have been between a post and its record.
    result = tally(alarm_ids, sinks, steps_each=2, resends_allowed=2)
    result.counts["received before the kill"] = before
    result.counts["posts cut off by the kill"] = hook_sink.abandoned
    check_sent_again(result, in_flight, killed_at)
    report("worker killed with SIGKILL mid fan-out", result)


def test_a_worker_killed_after_the_provider_took_a_message_sends_it_again_within_seconds(
    stack, mail_sink, escalation, report
):  # at least once: the server has the message, its sender died before it heard so
    token = escalation([(0, 4, [])])
    web, doomed = stack.web(), stack.worker("doomed")
    stack.beat()
    stack.wait_ready(web, doomed)
    doomed_pids = doomed.pids()
    killed_at = []

    def kill_the_sender(sink):  # the server took the tenth message and has not answered yet
        if len(sink.receipts) >= 10 and not killed_at:
            doomed.kill()
            killed_at.append(time.time())

    mail_sink.on_accept = kill_the_sender
    alarm_ids = accepted(burst(stack.url, token, 10))
    wait_for(lambda: killed_at, timeout=30)
    in_flight = sending(doomed_pids, alarm_ids)
    stack.wait_ready(stack.worker("survivor"))
    ready_at = time.time()  # from here on another worker is there to send them again
    settle(alarm_ids, [mail_sink], timeout=60)

    # Only a message whose answer never reached its sender goes again: one per pool process.
    # Those the server took and the sender heard of, but had not recorded yet (a drain records
    # ten at a time), are recorded from the mark it left when it heard (sent_marks).
    result = tally(alarm_ids, [mail_sink], steps_each=1, resends_allowed=2)
    again = mail_sink.received_again()
    result.counts["received again at the sink"] = len(again)
    if not again:
        result.problems.append("no message reached the sink twice: the window was not provoked")
    if len(again) != result.counts["resent"]:
        result.problems.append(
            f"the sink took {len(again)} messages twice, the database counts "
            f"{result.counts['resent']} sent again"
        )
    result.counts["survivor ready after"] = f"{ready_at - killed_at[0]:.1f} s" if killed_at else "-"
    check_sent_again(result, in_flight, ready_at)
    report("worker killed after the provider took a message", result)
