"""The three roles, as Django groups: Operators configure everything, Dispatch watch the board
and act on alarms, Viewers only read. Every check asks for a permission, never a group name,
so a superuser or a user given single permissions works the same way."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

OPERATORS = "Operators"
DISPATCH = "Dispatch"
VIEWERS = "Viewers"

READ_ALARMS = ["alarms.view_alarm", "alarms.view_alarmevent"]
# Who is on call, and when: every role may read the rotas.
READ_ON_CALL = ["oncall.view_team", "oncall.view_rotation", "oncall.view_schedule",
                "oncall.view_override"]  # fmt: skip
ACT_ON_ALARMS = ["alarms.acknowledge_alarm", "alarms.resolve_alarm", "alarms.cancel_alarm"]
# Raising or clearing an alarm by hand (the JSON API with a user's login or token).
RAISE_ALARMS = ["alarms.add_alarm"]
# Whole apps an operator configures; auth so they can give people logins and roles.
OPERATOR_APPS = [
    "accounts", "alarms", "auth", "devices", "django_celery_beat", "escalation", "notifications",
    "oncall", "responders",
]  # fmt: skip
# Stands for "may change the configuration": the admin and the seed endpoint ask for it.
CONFIGURE = "accounts.configure"

ROLE_PERMISSIONS = {
    VIEWERS: READ_ALARMS + READ_ON_CALL,
    DISPATCH: READ_ALARMS + READ_ON_CALL + ACT_ON_ALARMS + RAISE_ALARMS,
}


def _permissions(names: list[str]) -> Q:
    query = Q(pk__in=[])
    for name in names:
        app_label, codename = name.split(".")
        query |= Q(content_type__app_label=app_label, codename=codename)
    return query


def sync_role_groups(using: str = "default") -> None:
    """Create the role groups and give them their permissions (new models' included).

    Run by a migration and again after every migrate, once every app's permissions exist.
    """
    permissions = Permission.objects.using(using)
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role)
        group.permissions.add(*permissions.filter(_permissions(names)))
    operators, _ = Group.objects.using(using).get_or_create(name=OPERATORS)
    operators.permissions.add(*permissions.filter(content_type__app_label__in=OPERATOR_APPS))


def may_configure(user) -> bool:
    return bool(user and user.is_active and user.has_perm(CONFIGURE))


def may_read_alarms(user) -> bool:
    return bool(user and user.is_active and user.has_perm("alarms.view_alarm"))
