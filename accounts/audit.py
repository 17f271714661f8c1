"""The audit trail of configuration: every save and delete of a configured object, and every
sign-in, with who (user), when, from where (address) and what changed. Alarm actions are on
each alarm's own timeline (AlarmEvent), with the same who, when and where.

Recorded from model signals, so the admin, the seed file, the API and the shell are all
caught; the request being served (set by `middleware`) says who and from where."""

import getpass
from contextvars import ContextVar

from django.apps import apps
from django.contrib.auth import signals as auth_signals
from django.db.models import signals

from core import client_address

from .models import AuditEntry

AUDITED = [
    "auth.User", "auth.Group", "accounts.ApiToken",
    "devices.Site", "devices.Room", "devices.Person", "devices.Device",
    "escalation.EscalationPolicy", "escalation.EscalationStep", "escalation.RoutingRule",
    "escalation.Silence", "escalation.Inhibition",
    "notifications.NotificationChannel", "alarms.MetricRule", "alarms.ScheduledAlarm",
    "alarms.InboundAddress",
    "oncall.Team", "oncall.Rotation", "oncall.RotationMember", "oncall.Schedule",
    "oncall.ScheduleRule", "oncall.Override", "oncall.TemporarySchedule", "oncall.TemporaryShift",
    "oncall.CalendarFeed",
]  # fmt: skip
# Written down only as "changed": what they hold must not be readable here.
HIDDEN = {"password", "token_hash", "previous_token_hash", "sia_key"}
# Bookkeeping the system itself writes; a save touching only these is no configuration change.
IGNORED = {"last_login", "last_seen_at", "last_used_at", "updated_at"}

_request: ContextVar = ContextVar("audited_request", default=None)


def middleware(get_response):
    def serve(request):
        token = _request.set(request)
        try:
            return get_response(request)
        finally:
            _request.reset(token)

    return serve


def _who() -> dict:
    request = _request.get()
    if request is None:
        return {"actor": f"command line ({getpass.getuser()})", "user": None, "source_ip": None}
    user = getattr(request, "user", None)  # DRF puts its token's user here too
    signed_in = bool(user and user.is_authenticated)
    return {
        "actor": user.get_username() if signed_in else "anonymous",
        "user": user if signed_in else None,
        "source_ip": client_address.of_request(request),
    }


def _value(instance, field) -> object:
    if field.name == "config" and hasattr(instance, "shown_config"):
        return instance.shown_config()
    value = field.value_from_object(instance)
    return (
        value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)
    )


def _snapshot(instance) -> dict:
    """Field values to compare; hidden ones only until they are written down (`_shown`)."""
    return {
        field.name: _value(instance, field)
        for field in instance._meta.concrete_fields
        if field.name not in IGNORED
    }


def _shown(snapshot: dict) -> dict:
    return {name: "(hidden)" if name in HIDDEN else value for name, value in snapshot.items()}


def record(action: str, instance=None, changes: dict | None = None, **who) -> AuditEntry:
    fields = who or _who()
    if instance is not None:
        fields |= {
            "object_type": instance._meta.label,
            "object_id": str(instance.pk),
            "object_repr": str(instance)[:200],
        }
    return AuditEntry.objects.create(action=action, changes=changes or {}, **fields)


def _unaudited(raw: bool, update_fields) -> bool:
    """Fixtures being loaded, or a save of the system's own bookkeeping only."""
    return raw or bool(update_fields and set(update_fields) <= IGNORED)


def _before_save(sender, instance, raw=False, update_fields=None, **kwargs):
    if _unaudited(raw, update_fields) or instance.pk is None:
        instance._audit_before = None
        return
    old = sender._base_manager.filter(pk=instance.pk).first()
    instance._audit_before = _snapshot(old) if old is not None else None


def _after_save(sender, instance, created, raw=False, update_fields=None, **kwargs):
    if _unaudited(raw, update_fields):
        return
    after, before = _snapshot(instance), getattr(instance, "_audit_before", None)
    if created or before is None:
        record(AuditEntry.Action.CREATED, instance, _shown(after))
        return
    changed = {name: [before.get(name), value] for name, value in after.items()}
    changed = {name: pair for name, pair in changed.items() if pair[0] != pair[1]}
    for name in HIDDEN & changed.keys():
        changed[name] = "changed"
    if changed:
        record(AuditEntry.Action.CHANGED, instance, changed)


def _after_delete(sender, instance, **kwargs):
    record(AuditEntry.Action.DELETED, instance, _shown(_snapshot(instance)))


def _links_changed(sender, instance, action, model, pk_set, **kwargs):
    """Who is in a step, which groups a user has: many-to-many links are configuration too."""
    if action not in ("post_add", "post_remove", "post_clear") or not hasattr(instance, "_meta"):
        return
    if instance._meta.label not in AUDITED:
        return
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    names = [str(obj) for obj in model._base_manager.filter(pk__in=pk_set or [])]
    record(
        AuditEntry.Action.CHANGED, instance, {str(model._meta.verbose_name_plural): {verb: names}}
    )


def _signed_in(sender, request, user, **kwargs):
    record(AuditEntry.Action.LOGIN, user, actor=user.get_username(), user=user,
           source_ip=client_address.of_request(request))  # fmt: skip


def _sign_in_failed(sender, credentials, request=None, **kwargs):
    ip = client_address.of_request(request) if request is not None else None
    username = str(credentials.get("username", ""))[:150]
    record(AuditEntry.Action.LOGIN_FAILED, actor=username or "anonymous", user=None, source_ip=ip)


def connect() -> None:
    for label in AUDITED:
        model = apps.get_model(label)
        signals.pre_save.connect(_before_save, sender=model, dispatch_uid=f"audit-pre-{label}")
        signals.post_save.connect(_after_save, sender=model, dispatch_uid=f"audit-save-{label}")
        signals.post_delete.connect(_after_delete, sender=model, dispatch_uid=f"audit-del-{label}")
    signals.m2m_changed.connect(_links_changed, dispatch_uid="audit-links")
    auth_signals.user_logged_in.connect(_signed_in, dispatch_uid="audit-login")
    auth_signals.user_login_failed.connect(_sign_in_failed, dispatch_uid="audit-login-failed")
