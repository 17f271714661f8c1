"""Workers under faults: two workers racing on the same escalation, and a worker killed with
SIGKILL in the middle of a fan-out."""

import pytest

from alarms.models import Alarm

from .checks import receipts, settle, tally, wait_for
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
    web, doomed = stack.web(), stack.worker("doomed")
    stack.beat()
    stack.wait_ready(web, doomed)

    alarm_ids = accepted(burst(stack.url, token, 40))
    sinks = [mail_sink, hook_sink]
    wait_for(lambda: len(receipts(sinks)) >= 100, timeout=30)
    before = len(receipts(sinks))
    doomed.kill()
    stack.wait_ready(stack.worker("survivor"))
    # A delivery the dead worker had taken waits out its lease (3 x timeout + 30 s).
    settle(alarm_ids, sinks, timeout=120)

    # Each of its two pool processes may have been between a post and its record.
    result = tally(alarm_ids, sinks, steps_each=2, resends_allowed=2)
    result.counts["received before the kill"] = before
    result.counts["posts cut off by the kill"] = hook_sink.abandoned
    report("worker killed with SIGKILL mid fan-out", result)
