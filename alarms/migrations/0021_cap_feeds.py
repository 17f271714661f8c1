from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("alarms", "0020_push_buttons_and_unreachable"),
        ("devices", "0010_alarm_source_kinds"),
    ]

    operations = []
