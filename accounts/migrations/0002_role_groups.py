"""The role groups Operators, Dispatch and Viewers with their permissions."""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_role_groups(apps, schema_editor):
    from accounts.roles import sync_role_groups

    # Permissions are normally made after the migrations; the groups need them now.
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=schema_editor.connection.alias)
    sync_role_groups(schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("alarms", "0011_scheduled_time_zone_validator"),
        ("devices", "0005_kind_metrics"),
        ("escalation", "0003_rule_outside_window"),
        ("notifications", "0002_delivery_audit_and_channel_templates"),
        ("django_celery_beat", "__latest__"),
    ]

    operations = [migrations.RunPython(create_role_groups, migrations.RunPython.noop)]
