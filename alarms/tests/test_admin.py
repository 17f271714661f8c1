"""The alarm's admin pages as operators read them: each field once, steps and rounds counted
from 1, times to the second, labels, details and steps as escaped tables and lists."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User

from alarms.models import Alarm, AlarmEvent, MetricRule, MetricSeries
from notifications.models import Delivery

pytestmark = pytest.mark.django_db

HOSTILE = '<img src=x onerror="window.__owned=1"><script>window.__owned=2</script>'
AT = datetime(2026, 3, 4, 12, 34, 56, tzinfo=UTC)


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("operator", "op@example.org", "pw"))
    return client


@pytest.fixture
def alarm(alice, make_device, webhook_channel):
    device, _ = make_device()
    return Alarm.objects.create(
        title="Fire in the lab", dedup_key="lab", source="api", device=device,
        room=device.room, site=device.room.site, person=alice,
        labels={"alertname": HOSTILE, "team": "lab"},
        details={"annotations": {"summary": HOSTILE}, "links": ["http://a.example/1", 2]},
        steps_snapshot=[
            {"order": 0, "delay_seconds": 0, "person_ids": [alice.pk], "methods": ["email"],
             "channel_ids": []},
            {"order": 1, "delay_seconds": 60, "person_ids": [], "methods": ["email"],
             "channel_ids": [webhook_channel.pk]},
        ],
        current_step=1, current_round=1, repeat_count=2, repeat_after_seconds=120,
    )  # fmt: skip


def page_of(operator, alarm) -> str:
    """The alarm's admin page, without the white space between tags."""
    response = operator.get(f"/admin/alarms/alarm/{alarm.pk}/change/")
    assert response.status_code == 200
    return re.sub(r">\s+<", "><", response.content.decode())


def test_the_alarm_page_shows_each_field_once(operator, alarm):
    page = page_of(operator, alarm)

    labels = re.findall(r'class="form-row field-([a-z_]+)"', page)
    assert labels and len(labels) == len(set(labels)), labels
    assert page.count("Steps (as this alarm keeps them)") == 1
    assert "Steps snapshot" not in page


def test_the_alarm_page_counts_steps_and_rounds_from_1(operator, alarm, alice):
    Delivery.objects.create(
        alarm=alarm, step=1, round=1, target=f"person:{alice.pk}", method="email", person=alice
    )

    page = page_of(operator, alarm)

    assert '<div class="readonly">2 of 2, round 2</div>' in page
    steps = re.search(r'<ol class="alarm-steps">(.*?)</ol>', page, re.S).group(1)
    assert steps.count("<li>") == 2
    assert "<li>after 0 s: Alice by email</li>" in steps
    assert "<li>after 60 s: nobody; post to Ops webhook (the current step)</li>" in steps
    assert (
        '<td class="field-what"><p>step 2</p></td><td class="field-round_number"><p>2</p>' in page
    )


def test_the_alarm_list_counts_steps_from_1(operator, alarm):
    page = operator.get("/admin/alarms/alarm/").content.decode()

    assert '<td class="field-step">2 of 2, round 2</td>' in page


def test_the_timeline_and_the_alarms_times_show_seconds(operator, alarm):
    acknowledged = AT + timedelta(seconds=7)
    Alarm.objects.filter(pk=alarm.pk).update(
        created_at=AT, acknowledged_at=acknowledged, acknowledged_by="Alice"
    )
    entry = AlarmEvent.objects.create(alarm=alarm, kind=AlarmEvent.Kind.TRIGGERED, text="raised")
    AlarmEvent.objects.filter(pk=entry.pk).update(at=AT + timedelta(seconds=1))

    page = page_of(operator, alarm)
    print(page[page.index("field-time") :][:300])

    assert '<td class="field-time"><p>2026-03-04 12:34:57</p></td>' in page
    assert '<div class="readonly">2026-03-04 12:34:56</div>' in page
    assert '<div class="readonly">2026-03-04 12:35:03 by Alice</div>' in page


def test_labels_and_details_are_key_value_tables_with_every_value_escaped(operator, alarm):
    page = page_of(operator, alarm)

    assert "<tr><th>team</th><td>lab</td></tr>" in page
    escaped = "&lt;img src=x onerror=&quot;window.__owned=1&quot;&gt;&lt;script&gt;"
    assert f"<tr><th>alertname</th><td>{escaped}" in page
    assert (
        f'<tr><th>annotations</th><td><table class="readable"><tr><th>summary</th><td>{escaped}'
        in page
    )
    assert "<tr><th>links</th><td><ul><li>http://a.example/1</li><li>2</li></ul></td></tr>" in page
    assert "<img src=x" not in page and "<script>window" not in page
    shown = re.findall(r'<div class="readonly">(.*?)</div>', page)
    assert not [value for value in shown if "{&quot;" in value or "None" in value]


def test_a_metric_rule_with_its_series_listed_saves_from_its_page(operator, site):
    rule = MetricRule.objects.create(
        name="Fridge warm", metric="fridge_temperature_c", operator=">", threshold=8,
        for_seconds=300, cooldown_seconds=600, severity="critical", site=site,
    )  # fmt: skip
    MetricSeries.objects.create(rule=rule, key="k1", labels={"room": "Pharmacy"}, last_value=9)
    url = f"/admin/alarms/metricrule/{rule.pk}/change/"
    page = operator.get(url).content.decode()
    assert '<th class="column-labels">Labels</th>' in page, "every column of the series named"
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    assert any(name.endswith("-0-id") for name in fields), "each series row names its record"

    form = {**fields, "name": "Fridge too warm", "metric": rule.metric, "operator": ">",
            "threshold": "8", "for_seconds": "300", "cooldown_seconds": "600",
            "severity": "critical", "site": site.pk, "matchers": "", "enabled": "on"}  # fmt: skip
    answer = operator.post(url, form)

    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert MetricRule.objects.get(pk=rule.pk).name == "Fridge too warm"
    assert rule.series.count() == 1
