"""Writing rows without the ORM's per-row statements, on both databases."""

import pytest

from alarms.models import Alarm
from core.bulk_sql import insert_unless_taken, update_many

pytestmark = pytest.mark.django_db


def test_an_insert_yields_to_a_row_already_holding_its_unique_values():
    first = Alarm(source="api", dedup_key="boiler", title="Boiler")
    assert insert_unless_taken(first) is True
    assert Alarm.objects.get(pk=first.pk).created_at == first.created_at  # set as save() would

    second = Alarm(source="api", dedup_key="boiler", title="Boiler again")  # one open per key
    assert insert_unless_taken(second) is False
    assert list(Alarm.objects.values_list("title", flat=True)) == ["Boiler"]


def test_many_rows_get_their_own_values_in_one_statement():
    alarms = [Alarm.objects.create(source="api", dedup_key=f"k{n}", title="T") for n in range(3)]
    for n, alarm in enumerate(alarms):
        alarm.current_step, alarm.title = n, f"step {n}"

    update_many(alarms, ["current_step"])

    assert sorted(Alarm.objects.values_list("current_step", "title")) == [
        (0, "T"), (1, "T"), (2, "T")
    ]  # fmt: skip
