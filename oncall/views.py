"""The on-call API: who is on call (now or at any instant), a rota's stretches, and overrides,
which operators manage for everyone and people for their own shifts (swapping from a phone)."""

from datetime import timedelta

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from alarms.api.errors import error
from alarms.api.openapi import errors
from core import client_address, rate_limits
from devices.models import Device

from . import calendar
from .models import CalendarFeed, Override, Rotation, Schedule
from .serializers import (
    OnCallSerializer,
    OverrideSerializer,
    ShiftsSerializer,
    answer_data,
    stretch_data,
)
from .who import stretches, who_is_on_call

READ = "oncall.view_schedule"
SUBJECT_MODELS = {"schedule": Schedule, "rotation": Rotation}
# Calendar apps fetch a feed every hour or so; more than this a minute from one address is not
# a calendar app.
CALENDAR_FETCHES_PER_MINUTE = 30
LONGEST_SPAN = timedelta(days=62)


def person_of(user):
    return getattr(user, "person", None) if user and user.is_authenticated else None


class OnCallAccess(BasePermission):
    """A user, not a device: reading needs oncall.view_schedule (every role has it); an
    override may be written by whoever may change overrides, or by a person it involves."""

    message = "A login or a user's API token is required; a device token cannot read rotas."

    def has_permission(self, request, view):
        user = request.user
        if isinstance(request.auth, Device) or not (user and user.is_active):
            return False
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return user.has_perm(READ)
        writing = getattr(view, "write_permission", None)
        if writing is None:
            return False  # a read-only view
        return user.has_perm(writing(request)) or person_of(user) is not None

    def has_object_permission(self, request, view, obj):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        if request.user.has_perm(view.write_permission(request)):
            return True
        person = person_of(request.user)
        self.message = "You may change only overrides of your own shifts."
        return person is not None and person.pk == obj.replaces_id


def subjects(query) -> list[tuple[str, int]]:
    """The schedules and rotations asked for (by id or name); every schedule without either."""
    asked = []
    for kind, model in SUBJECT_MODELS.items():
        for value in query.getlist(kind):
            lookup = {"pk": int(value)} if value.isdigit() else {"name": value}
            found = model.objects.filter(**lookup).values_list("pk", flat=True).first()
            if found is None:
                raise LookupError(f"no {kind} {value!r}")
            asked.append((kind, found))
    return asked or [("schedule", pk) for pk in Schedule.objects.values_list("pk", flat=True)]


def instant(query, name: str, default):
    text = query.get(name)
    if not text:
        return default
    parsed = parse_datetime(text.replace(" ", "+") if "T" in text else text)
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"{name}: an ISO 8601 instant with its offset, e.g. "
                         "2026-12-24T19:00:00+01:00")  # fmt: skip
    return parsed


SUBJECT_PARAMETERS = [
    OpenApiParameter("schedule", str, many=True, description="A schedule's id or name."),
    OpenApiParameter("rotation", str, many=True, description="A rotation's id or name."),
]


class OnCallView(APIView):
    """Who is on call at `at` (now when not given) in the schedules and rotations asked for
    (every schedule when none is): the recorded answer for the past, computed otherwise."""

    permission_classes = [OnCallAccess]

    @extend_schema(
        parameters=[*SUBJECT_PARAMETERS,
                    OpenApiParameter("at", str, description="ISO 8601 with offset; default now.")],
        responses={200: OnCallSerializer, **errors(401, 403, e400="A wrong `at`.",
                                                   e404="No such schedule or rotation.")},
    )  # fmt: skip
    def get(self, request):
        try:
            at = instant(request.query_params, "at", timezone.now())
            asked = subjects(request.query_params)
        except ValueError as exc:
            return error(str(exc), 400)
        except LookupError as exc:
            return error(str(exc), 404)
        teams = {(kind, row.pk): row.team for kind, model in SUBJECT_MODELS.items()
                 for row in model.objects.select_related("team")}  # fmt: skip
        answers = [answer_data(who_is_on_call(kind, pk, at), teams.get((kind, pk)))
                   for kind, pk in asked]  # fmt: skip
        return Response(OnCallSerializer({"on_call": answers}).data)


class ShiftsView(APIView):
    """Who is on call from `from` to `to` (at most 62 days; default the next 7), as stretches
    in which it does not change: what a week or month view draws."""

    permission_classes = [OnCallAccess]

    @extend_schema(
        parameters=[*SUBJECT_PARAMETERS,
                    OpenApiParameter("from", str, description="ISO 8601 with offset; default now."),
                    OpenApiParameter("to", str, description="ISO 8601 with offset.")],
        responses={200: ShiftsSerializer(many=True),
                   **errors(401, 403, e400="A wrong or too long span.",
                            e404="No such schedule or rotation.")},
    )  # fmt: skip
    def get(self, request):
        query = request.query_params
        try:
            start = instant(query, "from", timezone.now())
            end = instant(query, "to", start + timedelta(days=7))
            asked = subjects(query)
        except ValueError as exc:
            return error(str(exc), 400)
        except LookupError as exc:
            return error(str(exc), 404)
        if not start < end <= start + LONGEST_SPAN:
            return error("to: after from, and at most 62 days later", 400)
        answer = []
        for kind, pk in asked:
            found = stretches(kind, pk, start, end)
            name = SUBJECT_MODELS[kind].objects.get(pk=pk).name
            answer.append({"kind": kind, "id": pk, "name": name,
                           "stretches": [stretch_data(s) for s in found]})  # fmt: skip
        return Response(ShiftsSerializer(answer, many=True).data)


WRITTEN = {200: OverrideSerializer, **errors(400, 401, 403, 404)}


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("ended", bool, description="Also those that ended.")],
        responses={200: OverrideSerializer(many=True), **errors(400, 401, 403)},
    ),
    create=extend_schema(responses={201: OverrideSerializer, **errors(400, 401, 403)}),
    retrieve=extend_schema(responses={200: OverrideSerializer, **errors(401, 403, 404)}),
    update=extend_schema(responses=WRITTEN),
    partial_update=extend_schema(responses=WRITTEN),
    destroy=extend_schema(responses={204: None, **errors(401, 403, 404)}),
)
class OverrideViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin,
                      mixins.UpdateModelMixin, mixins.DestroyModelMixin,
                      mixins.ListModelMixin, viewsets.GenericViewSet):  # fmt: skip
    """Overrides of schedules: who covers, is added or is off, between two instants. Listed:
    those not ended yet (`?schedule=` for one schedule, `?ended=1` for the past too)."""

    serializer_class = OverrideSerializer
    permission_classes = [OnCallAccess]
    filterset_fields = ["schedule"]

    def write_permission(self, request) -> str:
        verb = {"POST": "add", "DELETE": "delete"}.get(request.method, "change")
        return f"oncall.{verb}_override"

    def get_queryset(self):
        overrides = Override.objects.select_related("schedule", "person", "replaces")
        if self.action == "list" and self.request.query_params.get("ended") not in ("1", "true"):
            overrides = overrides.filter(ends_at__gt=timezone.now())
        return overrides

    def perform_create(self, serializer):
        self._only_own(serializer)
        serializer.save(created_by=str(self.request.user))

    def perform_update(self, serializer):
        self._only_own(serializer)
        serializer.save()

    def _only_own(self, serializer) -> None:
        """Without the permission, a person may only give away their own shifts: the override
        (as it is after the change) names them as the one covered or off. Adding oneself, or
        taking someone else's shift, is for whoever may change overrides."""
        if self.request.user.has_perm(self.write_permission(self.request)):
            return
        person = person_of(self.request.user)
        current = getattr(serializer.instance, "replaces", None)
        replaces = serializer.validated_data.get("replaces", current)
        if getattr(replaces, "pk", None) != person.pk:
            message = "You may write overrides only of your own shifts: someone covers you, or "
            message += "you are off."
            raise serializers.ValidationError({"replaces": [message]})


@require_GET
def calendar_feed(request, token: str):
    """GET /calendar/<token>.ics: the link's shifts for the next 8 weeks; 404 for a token
    that is unknown or revoked (the same answer for both)."""
    address = client_address.of_request(request) or "unknown"
    if not rate_limits.allow(f"calendar:{address}", CALENDAR_FETCHES_PER_MINUTE):
        return JsonResponse({"error": "too many calendar requests; try again in a minute"},
                            status=429, headers={"Retry-After": "60"})  # fmt: skip
    feed = CalendarFeed.by_token(token)
    if feed is None:
        return JsonResponse({"error": "no such calendar (revoked, or never issued)"}, status=404)
    CalendarFeed.objects.filter(pk=feed.pk).update(last_used_at=timezone.now())
    response = HttpResponse(calendar.feed(feed), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="on-call.ics"'
    response["Cache-Control"] = "private, max-age=300"
    response["Referrer-Policy"] = "no-referrer"
    return response
