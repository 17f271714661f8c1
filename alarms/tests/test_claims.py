"""Claims with an ETA: "on my way, 10 minutes" acknowledges, several responders may claim, and
a policy may escalate again once every claim is past its ETA (claimed but not arrived)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms import claims, engine, lifecycle
from alarms.acklinks import issue_ack_link
from alarms.models import Alarm, AlarmEvent, Claim
from alarms.timeline import SYSTEM, Actor
from notifications.models import Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def raise_to(make_policy, make_device):
    """An alarm whose policy's two steps page these people (email), its first step run."""

    def raise_to(first, second=(), **policy_fields):
        policy = make_policy([(0, list(first), []), (300, list(second), [])], **policy_fields)
        device, _ = make_device(default_policy=policy)
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key="desk-1", title="Emergency key pressed", device=device,
            actor=SYSTEM,
        ).alarm  # fmt: skip
        assert engine.run_due_step(alarm.pk)
        return Alarm.objects.get(pk=alarm.pk)

    return raise_to


def as_(person, how="board"):
    return Actor(f"{person.name} ({how})", person=person)


def past_eta(alarm):
    """Let the claims' time pass."""
    earlier = timezone.now() - timedelta(seconds=1)
    Claim.objects.filter(alarm=alarm).update(eta_at=earlier)
    Alarm.objects.filter(pk=alarm.pk).exclude(late_claims_at=None).update(late_claims_at=earlier)


def test_the_first_claim_acknowledges_and_later_ones_are_kept(raise_to, alice, bob):
    alarm = raise_to([alice, bob])

    first = lifecycle.claim(alarm.pk, as_(alice), 10)
    second = lifecycle.claim(alarm.pk, as_(bob), 20)
    again = lifecycle.claim(alarm.pk, as_(alice), 5)

    alarm.refresh_from_db()
    assert (first.changed, second.changed, again.changed) == (True, False, False)
    assert alarm.status == "acknowledged" and alarm.acknowledged_by == "Alice (board)"
    assert alarm.next_escalation_at is None
    etas = {
        c.name: round((c.eta_at - c.claimed_at).total_seconds() / 60) for c in alarm.claims.all()
    }
    assert etas == {"Alice": 5, "Bob": 20}
    kinds = list(
        alarm.events.filter(kind__in=["claimed", "acknowledged"]).values_list("kind", flat=True)
    )
    assert kinds == ["claimed", "acknowledged", "claimed", "claimed"]


def test_a_claim_needs_an_open_alarm_and_a_sane_eta(raise_to, alice):
    alarm = raise_to([alice])

    with pytest.raises(lifecycle.BadEta, match="1 to 720"):
        lifecycle.claim(alarm.pk, as_(alice), 0)
    lifecycle.resolve(alarm.pk, SYSTEM)
    with pytest.raises(lifecycle.AlarmClosed):
        lifecycle.claim(alarm.pk, as_(alice), 10)
    assert not Claim.objects.exists()


def test_a_late_claim_escalates_again_from_the_first_step(raise_to, alice, bob):
    alarm = raise_to([alice], [bob], escalate_late_claims=True)
    lifecycle.claim(alarm.pk, as_(alice), 10)
    alarm.refresh_from_db()
    assert alarm.late_claims_at == alarm.claims.get().eta_at

    assert claims.escalate_late() == 0  # not yet
    past_eta(alarm)
    assert claims.escalate_late() == 1
    assert claims.escalate_late() == 0

    alarm.refresh_from_db()
    assert alarm.status == "triggered" and alarm.current_round == 1
    late = alarm.events.get(kind=AlarmEvent.Kind.CLAIMS_LATE)
    assert late.text == "Claimed by Alice, not resolved by the ETA: escalating again from step 1"
    assert engine.run_due_step(alarm.pk)
    rounds = list(Delivery.objects.filter(alarm=alarm, event="notify").values_list("round", "step"))
    assert sorted(rounds) == [(0, 0), (1, 0)]  # a new message, not the first one again
    # It escalates on as any open alarm: the next step pages Bob.
    Alarm.objects.filter(pk=alarm.pk).update(next_escalation_at=timezone.now())
    assert engine.run_due_step(alarm.pk)
    assert Delivery.objects.filter(alarm=alarm, person=bob, round=1, step=1).exists()


@pytest.mark.parametrize("case", ["policy off", "resolved", "one claim without an ETA"])
def test_no_late_escalation_when_it_was_not_asked_for_or_is_not_late(raise_to, alice, bob, case):
    alarm = raise_to([alice, bob], escalate_late_claims=case != "policy off")
    lifecycle.claim(alarm.pk, as_(alice), 10)
    if case == "resolved":
        lifecycle.resolve(alarm.pk, as_(alice))
    if case == "one claim without an ETA":
        lifecycle.claim(alarm.pk, as_(bob))
    past_eta(alarm)

    assert claims.escalate_late() == 0
    alarm.refresh_from_db()
    assert alarm.status == ("resolved" if case == "resolved" else "acknowledged")
    assert alarm.late_claims_at is None


def test_a_new_claim_pushes_the_late_escalation_back(raise_to, alice, bob):
    alarm = raise_to([alice, bob], escalate_late_claims=True)
    lifecycle.claim(alarm.pk, as_(alice), 5)
    lifecycle.claim(alarm.pk, as_(bob), 30)

    alarm.refresh_from_db()
    bobs = alarm.claims.get(person=bob).eta_at
    assert alarm.late_claims_at == bobs


def test_the_api_claims_with_an_eta_and_lists_who_is_coming(raise_to, alice, client, make_user):
    alarm = raise_to([alice])
    user = make_user("dana", role="Dispatch", first_name="Dana")
    client.force_login(user)

    refused = client.post(f"/v1/alarms/{alarm.pk}/claim", {"eta_minutes": 0},
                          content_type="application/json")  # fmt: skip
    claimed = client.post(f"/v1/alarms/{alarm.pk}/claim", {"eta_minutes": 15},
                          content_type="application/json")  # fmt: skip

    assert refused.status_code == 400 and "eta_minutes" in refused.json()["fields"]
    assert claimed.status_code == 200, claimed.content
    body = claimed.json()
    assert body["status"] == "acknowledged" and body["changed"] is True
    assert [c["name"] for c in body["claims"]] == ["Dana"]
    listed = client.get("/v1/alarms").json()["results"][0]
    assert listed["claims"][0]["eta_at"] == body["claims"][0]["eta_at"]


def test_the_ack_page_says_on_my_way(raise_to, alice, client):
    alarm = raise_to([alice])
    path = issue_ack_link(alarm, person=alice).split("8000", 1)[1]

    bad = client.post(path, {"action": "claim", "eta": "soon"})
    good = client.post(path, {"action": "claim", "eta": "10"})

    assert bad.status_code == 400
    assert "The minutes until you are there must be 1 to 720 minutes." in bad.content.decode()
    assert good.status_code == 200 and "You are on your way: expected at" in good.content.decode()
    claim = Alarm.objects.get(pk=alarm.pk).claims.get()
    assert claim.via == "Alice (ACK link)"


def test_a_claim_after_a_plain_acknowledgement_never_escalates_again(raise_to, alice, bob):
    alarm = raise_to([alice, bob], escalate_late_claims=True)
    lifecycle.acknowledge(alarm.pk, as_(bob))
    lifecycle.claim(alarm.pk, as_(alice), 5)
    past_eta(alarm)

    assert claims.escalate_late() == 0
    alarm.refresh_from_db()
    assert alarm.status == "acknowledged" and alarm.acknowledged_by == "Bob (board)"


def test_after_a_late_claim_escalated_the_next_ack_stands_down_the_new_round(raise_to, alice, bob):
    alarm = raise_to([alice], [bob], escalate_late_claims=True)
    Delivery.objects.filter(alarm=alarm).update(status="sent")
    lifecycle.claim(alarm.pk, as_(bob), 10)  # Bob was not paged: Alice is stood down
    past_eta(alarm)
    claims.escalate_late()
    assert engine.run_due_step(alarm.pk)
    Delivery.objects.filter(alarm=alarm, event="notify").update(status="sent")

    lifecycle.acknowledge(alarm.pk, as_(bob))

    stood_down = Delivery.objects.filter(alarm=alarm, event="stand_down", person=alice)
    assert sorted(stood_down.values_list("round", flat=True)) == [0, 1]
