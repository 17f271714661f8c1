"""Where alarms come from and who they concern: sites, rooms, people and devices."""

import ipaddress
import re
import secrets
from datetime import timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.config_cache import kept, watch
from core.tokens import hash_token, new_token
from notifications.transports import PERSON_METHODS, choices

# A device's last_seen_at is kept to within this.
SEEN_RESOLUTION = timedelta(seconds=10)


def validate_e164(value: str) -> None:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"{value!r} is not a phone number in E.164 form (+4930…).") from exc
    if not phonenumbers.is_valid_number(number) or value != phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.E164
    ):
        raise ValidationError(f"{value!r} is not a valid phone number in E.164 form (+4930…).")


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(entry) for entry in re.split(r"[\s,]+", text.strip()) if entry]


def validate_ntfy_topic(value: str) -> None:
    # ntfy's own rule for topic names; a short one is guessed.
    if not re.fullmatch(r"[-_A-Za-z0-9]{1,64}", value):
        raise ValidationError("A topic is 1 to 64 letters, digits, - or _.")
    if len(value) < 20:
        raise ValidationError("A topic this short can be guessed: use at least 20 characters.")


def validate_networks(text: str) -> None:
    try:
        parse_networks(text)
    except ValueError as exc:
        raise ValidationError(f"Not a network in CIDR form (10.1.0.0/16): {exc}") from exc


def normalize_mac(value: str) -> str:
    """'00:15:65:AA:BB:CC', '0015.65aa.bbcc' and '001565aabbcc' are the same phone."""
    return re.sub(r"[^0-9a-f]", "", value.lower())


def validate_mac(value: str) -> None:
    if len(normalize_mac(value)) != 12:
        raise ValidationError(f"{value!r} is not a MAC address (00:15:65:aa:bb:cc).")


def validate_sia_account(value: str) -> None:
    if not re.fullmatch(r"[0-9A-Fa-f]{3,16}", value):
        raise ValidationError(f"{value!r} is not an account number (3–16 hex digits, e.g. 1234).")


def validate_sia_key(value: str) -> None:
    if not re.fullmatch(r"[0-9A-Fa-f]{16}|[0-9A-Fa-f]{24}|[0-9A-Fa-f]{32}", value):
        raise ValidationError("The key is 16, 24 or 32 hex characters, as the panel holds it.")


def validate_sia_code(value: str) -> None:
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValidationError(f"{value!r} is not an event code (two capital letters, e.g. BA).")


# The severities an alarm can have (alarms.models.Severity, which this app may not import).
SEVERITIES = [(name, name) for name in ("critical", "high", "warning", "info")]


class Site(models.Model):
    name = models.CharField(max_length=200, unique=True)
    address = models.TextField(blank=True)
    default_policy = models.ForeignKey(
        "escalation.EscalationPolicy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For alarms from this site that no routing rule and no device default routes.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Room(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="rooms")
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["site__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["site", "name"], name="unique_room_per_site")
        ]

    def __str__(self):
        return f"{self.site.name} / {self.name}"


class Person(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField("phone (E.164)", max_length=20, blank=True, validators=[validate_e164])
    signal_number = models.CharField(
        "Signal number (E.164)", max_length=20, blank=True, validators=[validate_e164]
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="person",
        help_text="The login of this person, if they use the board or the admin.",
    )
    extension = models.CharField(
        "PBX extension",
        max_length=100,
        blank=True,
        help_text="For calls through the site's own PBX (Asterisk): an extension (201) or an "
        "endpoint (PJSIP/201); empty: the phone number.",
    )
    ntfy_topic = models.CharField(
        "ntfy topic",
        max_length=64,
        blank=True,
        validators=[validate_ntfy_topic],
        help_text="The person's own topic on the ntfy server, which their phone's ntfy app "
        "subscribes to. Anyone who knows it may read it: leave it to the admin's "
        "'Issue push topics' action, which makes one nobody can guess.",
    )
    gotify_token = models.CharField(
        "Gotify application token",
        max_length=100,
        blank=True,
        help_text="The token of an application of the person's own Gotify user: what is posted "
        "with it reaches their phone's Gotify app.",
    )
    active = models.BooleanField(default=True, help_text="Inactive people are never notified.")
    # Set by a STOP reply from that contact point, cleared by START (or here by an operator).
    sms_opted_out_at = models.DateTimeField(
        "SMS muted since",
        null=True,
        blank=True,
        help_text="The person replied STOP to an SMS: no SMS goes to their phone until they "
        "reply START (or this is cleared).",
    )
    signal_opted_out_at = models.DateTimeField(
        "Signal muted since",
        null=True,
        blank=True,
        help_text="The person replied STOP on Signal: no Signal message goes to them until they "
        "reply START (or this is cleared).",
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "people"

    OPT_OUT_FIELDS = {"sms": "sms_opted_out_at", "signal": "signal_opted_out_at"}

    def __str__(self):
        return self.name

    def issue_ntfy_topic(self) -> str:
        """A topic of the person's own nobody can guess (ntfy topics are their own password)."""
        self.ntfy_topic = "alarms-" + secrets.token_urlsafe(24)
        return self.ntfy_topic

    def muted(self, method: str) -> bool:
        """Whether this person opted out of messages by this method."""
        field = self.OPT_OUT_FIELDS.get(method)
        return bool(field and getattr(self, field))


class NotificationRule(models.Model):
    """One line of a person's own way to be reached: by this contact point, this many minutes
    after a step pages them, unless the alarm was acknowledged by then ("push at once, SMS
    after 2 minutes, call after 5"). High urgency is a critical or high alarm; low, the rest.
    A step whose methods say "personal" follows these rules."""

    class Urgency(models.TextChoices):
        HIGH = "high", "High (critical, high)"
        LOW = "low", "Low (warning, info)"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="rules")
    urgency = models.CharField(max_length=4, choices=Urgency.choices, default=Urgency.HIGH)
    method = models.CharField("contact point", max_length=20, choices=choices(PERSON_METHODS))
    delay_minutes = models.PositiveIntegerField(
        default=0, help_text="Minutes after the step paged them; 0: at once."
    )

    class Meta:
        ordering = ["person", "urgency", "delay_minutes", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["person", "urgency", "method"], name="one_rule_per_contact_point"
            )
        ]

    def __str__(self):
        when = f"after {self.delay_minutes} min" if self.delay_minutes else "at once"
        return f"{self.person}: {self.method} {when} ({self.urgency} urgency)"


def urgency_of(severity: str) -> str:
    return NotificationRule.Urgency.HIGH if severity in ("critical", "high") else "low"


class Device(models.Model):
    class Kind(models.TextChoices):
        YEALINK = "yealink", "Yealink desk phone (Action URL)"
        GENERIC = "generic", "Generic device or service (JSON API)"
        ALERTMANAGER = "alertmanager", "Prometheus Alertmanager (webhook)"
        PAGERDUTY = "pagerduty", "PagerDuty Events API v2 sender"
        METRICS = "metrics", "Metrics sender (/v1/metrics)"
        SIA_PANEL = "sia", "Alarm panel (SIA DC-09)"
        CAP = "cap", "Public warnings (CAP 1.2 sender or feed)"
        OPSGENIE = "opsgenie", "Opsgenie Alert API sender"
        EMAIL = "email", "Mail-only device or system (email in)"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.GENERIC)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # After a rotation the old token keeps working until then, so the device can be updated.
    previous_token_hash = models.CharField(
        max_length=64, null=True, blank=True, unique=True, editable=False
    )
    previous_token_valid_until = models.DateTimeField(null=True, blank=True, editable=False)
    allowed_networks = models.TextField(
        blank=True,
        validators=[validate_networks],
        help_text="Networks the token may be used from, in CIDR form, one per line "
        "(10.1.0.0/16); empty: anywhere.",
    )
    mac_address = models.CharField(
        "MAC address",
        max_length=17,
        blank=True,
        validators=[validate_mac],
        help_text="Yealink phones: the phone's MAC address; its Action URL then must carry "
        "&mac=$mac and a request from another phone is refused.",
    )
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT)
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.PROTECT)
    person = models.ForeignKey(
        Person,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="The person this device stands for (whose desk phone, whose panic button).",
    )
    enabled = models.BooleanField(default=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=30, help_text="Requests per minute above which the device is answered 429."
    )
    default_policy = models.ForeignKey(
        "escalation.EscalationPolicy", null=True, blank=True, on_delete=models.SET_NULL
    )
    heartbeat_interval_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Raise a 'device offline' alarm when nothing is heard from the device for this "
        "long (heartbeats or alarms); empty: not watched.",
    )
    # An alarm panel (SIA DC-09): the account it reports as, and its AES key where it encrypts.
    sia_account = models.CharField(
        "account number",
        max_length=16,
        null=True,
        blank=True,
        unique=True,
        validators=[validate_sia_account],
        help_text="Alarm panels: the account number the panel reports with (3–16 hex digits).",
    )
    sia_key = models.CharField(
        "encryption key",
        max_length=32,
        blank=True,
        validators=[validate_sia_key],
        help_text="Alarm panels that encrypt: the AES key as the panel's settings hold it, 16, "
        "24 or 32 hex characters (AES-128, -192, -256); empty: the panel sends in the clear.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Integrations speak for a service, not a place: they need no room or person.
    INTEGRATIONS = (
        Kind.ALERTMANAGER, Kind.PAGERDUTY, Kind.METRICS, Kind.CAP, Kind.OPSGENIE, Kind.EMAIL
    )  # fmt: skip

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.room and not self.site_id:
            self.site = self.room.site
        self.sia_account = self.sia_account.upper() if self.sia_account else None
        if not self.token_hash:
            self.rotate_token()
        super().save(*args, **kwargs)

    def clean(self):
        if self.room and self.site and self.room.site_id != self.site_id:
            raise ValidationError({"room": "This room belongs to another site."})
        if self.kind == self.Kind.SIA_PANEL and not self.sia_account:
            raise ValidationError({"sia_account": "An alarm panel needs its account number."})
        self.sia_account = self.sia_account.upper() if self.sia_account else None

    def rotate_token(self, grace: timedelta | None = None) -> str:
        """Set a new token and return it: the only time it is ever readable. With a grace
        period the old token keeps working that long; without, it stops at once."""
        if grace and self.token_hash:
            self.previous_token_hash = self.token_hash
            self.previous_token_valid_until = timezone.now() + grace
        else:
            self.previous_token_hash = self.previous_token_valid_until = None
        token = new_token()
        self.token_hash = hash_token(token)
        self.issued_token = token
        return token

    TOKEN_FIELDS = ["token_hash", "previous_token_hash", "previous_token_valid_until"]

    @classmethod
    def by_token(cls, token: str) -> "Device | None":
        """The device holding this token, or its previous one still within its grace. Each
        process keeps the devices whose tokens were used (core/config_cache.py): a raise then
        reads no device; unknown tokens are looked up every time and never kept."""
        if not token:
            return None
        hashed = hash_token(token)
        devices = kept("devices by token", dict)  # token hash -> Device, shared: read-only
        device = devices.get(hashed)
        if device is None:
            device = cls.objects.filter(
                Q(token_hash=hashed) | Q(previous_token_hash=hashed)
            ).first()
            if device is None:
                return None
            devices[hashed] = device.with_relations()
        if hashed != device.token_hash and not (
            device.previous_token_valid_until and device.previous_token_valid_until > timezone.now()
        ):
            return None  # its previous token, past the grace period
        return device

    RELATIONS = ("site", "room", "person", "default_policy")

    def with_relations(self) -> "Device":
        """The device with its site, room (and the room's site), person and default policy from
        what this process keeps by id: read with it in one query, every new token (each phone's
        first press) would have the database plan a five-table join, three times the cost."""
        rows = kept("device relations", dict)  # (model, id) -> row, shared: read-only
        for name in self.RELATIONS:
            model, pk = self._meta.get_field(name).related_model, getattr(self, f"{name}_id")
            if pk is not None and (model, pk) not in rows:
                found = model.objects.select_related("site") if model is Room else model.objects
                rows[model, pk] = found.filter(pk=pk).first()
            setattr(self, name, rows.get((model, pk)))
        return self

    def refusal(self, ip: str | None, mac: str | None = None) -> str:
        """Why this device's token may not be used from here ('' when it may)."""
        if self.allowed_networks.strip():
            try:
                address = ipaddress.ip_address(ip or "")
            except ValueError:
                address = None
            if address is None or not any(
                address in network for network in parse_networks(self.allowed_networks)
            ):
                return f"this token may not be used from {ip or 'an unknown address'}"
        if self.mac_address and normalize_mac(mac or "") != normalize_mac(self.mac_address):
            return "this token belongs to another phone (mac does not match)"
        return ""

    def mark_seen(self) -> None:
        """Note that the device spoke; to within SEEN_RESOLUTION, so a device that sends many
        requests does not write its row for each."""
        now = timezone.now()
        if self.last_seen_at is None or now - self.last_seen_at >= SEEN_RESOLUTION:
            Device.objects.filter(pk=self.pk).update(last_seen_at=now)
            self.last_seen_at = now

    @property
    def mapping_problem(self) -> str:
        """Why an alarm from this device could not say where or who, or '' when it can."""
        if self.kind == self.Kind.SIA_PANEL:
            return "" if self.site_id or self.room_id else "The panel guards no site."
        if self.kind not in self.INTEGRATIONS and not self.room_id and not self.person_id:
            return "The device is not mapped to a room or a person."
        return ""


def normal_zone(zone: str) -> str:
    """A zone number as panels write it in several ways ("015", "15"): one spelling."""
    return zone.strip().lstrip("0") or "0"


class PanelZone(models.Model):
    """Where a panel's zone is: its alarms name this room."""

    panel = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="zones", limit_choices_to={"kind": "sia"}
    )
    zone = models.CharField(max_length=8, help_text="The zone (point) number the panel reports.")
    room = models.ForeignKey(Room, on_delete=models.PROTECT)
    name = models.CharField(max_length=200, blank=True, help_text="e.g. Back door contact")

    class Meta:
        ordering = ["panel", "zone"]
        constraints = [
            models.UniqueConstraint(fields=["panel", "zone"], name="unique_zone_per_panel")
        ]

    def __str__(self):
        return f"{self.panel.name} zone {self.zone}: {self.name or self.room}"

    def save(self, *args, **kwargs):
        self.zone = normal_zone(self.zone)
        super().save(*args, **kwargs)


class PanelEventCode(models.Model):
    """What an event code from alarm panels means, where the built-in table says otherwise or
    nothing (alarms/sources/sia_codes.py). Contact ID events arrive as their SIA codes."""

    class Action(models.TextChoices):
        RAISE = "raise", "Raise an alarm"
        CLEAR = "clear", "Clear (a restore)"
        IGNORE = "ignore", "Ignore (acknowledged to the panel, kept in the log)"
        SUPERVISION = "supervision", "Supervision only (a test report: the panel is alive)"

    code = models.CharField(
        max_length=2, unique=True, validators=[validate_sia_code], help_text="e.g. BA"
    )
    action = models.CharField(max_length=12, choices=Action.choices, default=Action.RAISE)
    title = models.CharField(max_length=100, blank=True, help_text="e.g. Burglary alarm")
    severity = models.CharField(max_length=10, choices=SEVERITIES, default="high")
    condition = models.CharField(
        max_length=40,
        blank=True,
        help_text="What a restore clears: an alarm and its restore name the same condition "
        "(BA raises burglary, BR clears it); empty: the code itself.",
    )

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return f"{self.code}: {self.get_action_display()}"


# A device kept by token carries its site, room and person; panels' zones and codes are kept too.
watch(Site, Room, Person, Device, PanelZone, PanelEventCode)
