import django.db.models.deletion
from django.db import migrations, models

import alarms.models


class Migration(migrations.Migration):
    dependencies = [
        ("alarms", "0021_cap_feeds"),
        ("devices", "0010_alarm_source_kinds"),
    ]

    operations = [
        migrations.CreateModel(
            name="InboundAddress",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "local_part",
                    models.CharField(
                        help_text="What comes before the @: ups-basement for ups-basement@alarms.example.org.",
                        max_length=64,
                        unique=True,
                        validators=[alarms.models.validate_local_part],
                    ),
                ),
                (
                    "resolved_pattern",
                    models.CharField(
                        default=alarms.models.DEFAULT_RESOLVED_PATTERN,
                        help_text="A regular expression: a subject it matches resolves the open alarm with the same key instead of raising one.",
                        max_length=500,
                        validators=[alarms.models.validate_pattern],
                    ),
                ),
                (
                    "key_pattern",
                    models.CharField(
                        blank=True,
                        help_text="A regular expression searched in the subject: its first group (or what it matched) is the alarm's key, so an alarm mail and its all-clear share one; empty, or no match: the subject without state words (alarm, OK…), dates, times and measured values.",
                        max_length=500,
                        validators=[alarms.models.validate_pattern],
                    ),
                ),
                (
                    "severity",
                    models.CharField(
                        choices=[
                            ("critical", "Critical"),
                            ("high", "High"),
                            ("warning", "Warning"),
                            ("info", "Info"),
                        ],
                        default="high",
                        max_length=10,
                    ),
                ),
                (
                    "device",
                    models.OneToOneField(
                        help_text="An integration of kind 'Mail-only device or system (email in)'.",
                        limit_choices_to={"kind": "email"},
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="inbound_address",
                        to="devices.device",
                    ),
                ),
            ],
            options={"verbose_name_plural": "inbound addresses", "ordering": ["local_part"]},
        ),
        migrations.CreateModel(
            name="InboundMail",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("recipient", models.CharField(max_length=320)),
                ("envelope_from", models.CharField(blank=True, max_length=320)),
                ("peer", models.GenericIPAddressField(blank=True, null=True)),
                ("raw", models.BinaryField(help_text="The message as received.")),
                ("received_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("processed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "outcome",
                    models.CharField(blank=True, help_text="What came of it.", max_length=300),
                ),
                (
                    "address",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="mails",
                        to="alarms.inboundaddress",
                    ),
                ),
                (
                    "alarm",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="alarms.alarm",
                    ),
                ),
            ],
            options={
                "ordering": ["-received_at", "-id"],
                "indexes": [
                    models.Index(
                        condition=models.Q(("processed_at__isnull", True)),
                        fields=["received_at"],
                        name="inbound_mail_unprocessed",
                    )
                ],
            },
        ),
    ]
