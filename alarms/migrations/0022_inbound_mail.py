from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("alarms", "0021_cap_feeds")]

    operations = []
