"""Alarms the storm guard folded before `folded_into` existed are found folded after the
migration that records it (the board and the routing test page read only `folded_into`)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("alarms", "0016_alarm_folded_into")]
AFTER = [("alarms", "0017_fold_earlier_storm_members")]


def migrate(to):
    executor = MigrationExecutor(connection)
    executor.migrate(to)
    return executor.loader.project_state(to).apps


@pytest.fixture(autouse=True)
def _latest_schema_afterwards():
    """The tests after this one find every migration applied again (going back to 0016 took
    the later ones of every app away)."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_an_alarm_folded_before_is_recorded_under_its_storm_alarm():
    Alarm = migrate(BEFORE).get_model("alarms", "Alarm")
    storm = Alarm.objects.create(source="storm", dedup_key="storm:source api:1", title="storm")
    folded = Alarm.objects.create(
        source="api", dedup_key="a", title="a",
        silenced_by=f"the storm guard (source api): one digest in alarm {storm.pk}",
    )  # fmt: skip
    silenced = Alarm.objects.create(source="api", dedup_key="b", title="b", silenced_by="rule x")

    Alarm = migrate(AFTER).get_model("alarms", "Alarm")

    assert Alarm.objects.get(pk=folded.pk).folded_into_id == storm.pk
    assert Alarm.objects.get(pk=silenced.pk).folded_into_id is None
