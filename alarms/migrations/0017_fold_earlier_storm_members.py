"""Alarms the storm guard folded before `folded_into` existed name their storm alarm only in
`silenced_by` ("the storm guard (…): one digest in alarm <id>"): record it in `folded_into`,
which is what the board and the routing test page read."""

import re
import uuid

from django.db import migrations

STORM_ALARM = re.compile(r"^the storm guard \(.*\): one digest in alarm ([0-9a-f-]{36})$")


def fold(apps, schema_editor):
    Alarm = apps.get_model("alarms", "Alarm")
    folded = Alarm.objects.filter(folded_into=None, silenced_by__startswith="the storm guard (")
    for pk, silenced_by in folded.values_list("pk", "silenced_by").iterator():
        match = STORM_ALARM.match(silenced_by)
        if match and Alarm.objects.filter(pk=uuid.UUID(match[1])).exists():
            Alarm.objects.filter(pk=pk).update(folded_into_id=uuid.UUID(match[1]))


class Migration(migrations.Migration):
    dependencies = [("alarms", "0016_alarm_folded_into")]

    operations = [migrations.RunPython(fold, migrations.RunPython.noop)]
