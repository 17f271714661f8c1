"""The escalation policy's admin page numbers its steps as people count them, from 1, and
keeps storing them in order from 0 as the engine reads them."""

import re

import pytest

from escalation.models import EscalationPolicy

pytestmark = pytest.mark.django_db

CHANGE = "/admin/escalation/escalationpolicy/{}/change/"


def compact(response) -> str:
    assert response.status_code == 200
    return re.sub(r">\s+<", "><", response.content.decode())


def test_the_policy_page_numbers_its_steps_from_1(admin_client, make_policy):
    policy = make_policy([(0, [], []), (60, [], [])], name="Night shift")

    page = compact(admin_client.get(CHANGE.format(policy.pk)))

    assert 'name="steps-0-order" value="1"' in page
    assert 'name="steps-1-order" value="2"' in page
    headings = re.findall(r'<span class="inline_label">(\d+)', page)
    assert headings == ["1", "2"]


def step_form(policy, numbers: list[str]) -> dict:
    steps = list(policy.steps.order_by("order"))
    data = {
        "name": policy.name, "description": "", "repeat_count": "0",
        "repeat_after_seconds": "300",
        "steps-TOTAL_FORMS": str(len(steps)), "steps-INITIAL_FORMS": str(len(steps)),
        "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for index, (step, number) in enumerate(zip(steps, numbers, strict=True)):
        prefix = f"steps-{index}-"
        data.update({
            prefix + "id": str(step.pk), prefix + "policy": str(policy.pk),
            prefix + "order": number, prefix + "delay_seconds": str(step.delay_seconds),
            prefix + "methods": '["email"]',
        })  # fmt: skip
    return data


def test_steps_numbered_from_1_in_the_form_are_stored_from_0_even_when_swapped(
    admin_client, make_policy
):
    policy = make_policy([(0, [], []), (60, [], [])], name="Night shift")

    # Swapped: the step after 60 s becomes the first.
    response = admin_client.post(CHANGE.format(policy.pk), step_form(policy, ["2", "1"]))

    assert response.status_code == 302, compact(response)
    stored = EscalationPolicy.objects.get(pk=policy.pk).steps.order_by("order")
    assert [(s.order, s.delay_seconds) for s in stored] == [(0, 60), (1, 0)]


def test_a_step_numbered_0_is_refused(admin_client, make_policy):
    policy = make_policy([(0, [], [])], name="Night shift")

    page = compact(admin_client.post(CHANGE.format(policy.pk), step_form(policy, ["0"])))

    assert "Steps are numbered from 1." in page
    assert policy.steps.get().order == 0


def test_a_step_is_named_as_people_count_it(make_policy):
    policy = make_policy([(0, [], []), (60, [], [])], name="Night shift")

    assert [str(step) for step in policy.steps.order_by("order")] == [
        "Night shift: step 1", "Night shift: step 2"]  # fmt: skip
