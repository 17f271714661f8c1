import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alarms", "0020_push_buttons_and_unreachable"),
        ("devices", "0010_alarm_source_kinds"),
    ]

    operations = [
        migrations.CreateModel(
            name="CapFeed",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True)),
                (
                    "url",
                    models.URLField(help_text="The Atom or RSS feed's address.", max_length=2000),
                ),
                ("enabled", models.BooleanField(default=True)),
                (
                    "poll_interval_seconds",
                    models.PositiveIntegerField(
                        default=300, validators=[django.core.validators.MinValueValidator(30)]
                    ),
                ),
                ("etag", models.CharField(blank=True, editable=False, max_length=500)),
                ("last_modified", models.CharField(blank=True, editable=False, max_length=100)),
                ("seen_entries", models.JSONField(blank=True, default=list, editable=False)),
                ("last_polled_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("last_error", models.TextField(blank=True, editable=False)),
                (
                    "device",
                    models.ForeignKey(
                        help_text="An integration of kind 'Public warnings (CAP 1.2 sender or "
                        "feed)': its alarms, rate limit and routing.",
                        limit_choices_to={"kind": "cap"},
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="cap_feeds",
                        to="devices.device",
                    ),
                ),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.CreateModel(
            name="CapMessage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sender", models.CharField(max_length=255)),
                ("identifier", models.CharField(max_length=255)),
                ("sent", models.CharField(max_length=40)),
                ("msg_type", models.CharField(max_length=10)),
                ("dedup_key", models.CharField(max_length=255)),
                ("received_at", models.DateTimeField(auto_now_add=True)),
                (
                    "device",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="devices.device",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("device", "sender", "identifier"),
                        name="one_cap_message_per_identity",
                    )
                ],
            },
        ),
    ]
