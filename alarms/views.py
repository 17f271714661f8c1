"""Pages: the ACK link (GET shows the alarm and a button, POST acts; link scanners change
nothing) and the dispatch board."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from core import client_address, rate_limits
from devices.models import Site
from notifications.messages import clock
from oncall.models import Team

from . import board, lifecycle
from .acklinks import find_ack_link
from .models import AckLink, AlarmEvent, Severity
from .timeline import Actor, record


def _actor(request, link) -> Actor:
    ip = client_address.of_request(request)
    if link.person:
        return Actor(f"{link.person.name} (ACK link)", person=link.person, ip=ip)
    # A link posted to a channel: whoever reads the channel may use it and say who they are.
    name = " ".join(request.POST.get("name", "").split())[:100] or "someone"
    return Actor(f"{name} (link in {link.channel.name if link.channel else 'a channel'})", ip=ip)


def _within_rate(request) -> bool:
    """ACK links opened or used from this address this minute: guessing is as slow as using."""
    return rate_limits.allow(
        f"ack:{client_address.of_request(request)}", settings.ACK_RATE_PER_MINUTE
    )


@require_http_methods(["GET", "POST"])
def ack(request, token: str):
    # Counted before the lookup, so guessing links is as slow as using them.
    if not _within_rate(request):
        response = render(request, "alarms/ack_throttled.html", status=429)
        response["Retry-After"] = "60"
        return response
    link = find_ack_link(token)
    if link is None:
        return render(request, "alarms/ack_invalid.html", status=404)
    AckLink.objects.filter(pk=link.pk).update(last_used_at=timezone.now())
    alarm = link.alarm
    actor = _actor(request, link)
    context = {"alarm": alarm, "person": link.person, "channel": link.channel}
    if request.method == "GET":
        if alarm.is_open:
            record(alarm, AlarmEvent.Kind.ACK_LINK_OPENED, "ACK link opened", actor)
        return render(request, "alarms/ack.html", context)
    try:
        if request.POST.get("action") == "claim":
            return _claim(request, link, actor, context)
        outcome = lifecycle.acknowledge(alarm.pk, actor)
    except lifecycle.AlarmClosed as exc:
        context["alarm"] = exc.alarm
        return render(request, "alarms/ack.html", context, status=410)
    context.update(alarm=outcome.alarm, changed=outcome.changed, acted=True)
    return render(request, "alarms/ack.html", context)


def _claim(request, link, actor, context):
    """On my way, in the minutes given (none: no ETA); the first claim acknowledges."""
    eta = request.POST.get("eta", "").strip()
    try:
        if eta and not eta.isdigit():
            raise lifecycle.BadEta(f"1 to {lifecycle.MAX_ETA_MINUTES} minutes")
        outcome = lifecycle.claim(link.alarm.pk, actor, int(eta) if eta else None)
    except lifecycle.BadEta as exc:
        context["error"] = f"The minutes until you are there must be {exc}."
        return render(request, "alarms/ack.html", context, status=400)
    mine = outcome.alarm.claims.filter(cycle=outcome.alarm.reopen_count).order_by("-claimed_at")
    context.update(alarm=outcome.alarm, acted=True, claimed=True, claim=mine.first())
    return render(request, "alarms/ack.html", context)


# What a push notification's buttons do (`notifications.transports.push`).
ACTIONS = {"acknowledge": "Acknowledged", "claim": "On your way"}


@csrf_exempt  # a capability URL: the token is the credential, no cookie is read
def ack_action(request, token: str, action: str):
    """A button of a push notification: POST only (a preview or a scanner that GETs the URL
    changes nothing), taken once per link, answered in JSON for the app that pressed it."""
    if request.method != "POST":
        return _json({"error": "Press the button: this address takes a POST."}, 405, Allow="POST")
    if not _within_rate(request):
        return _json(
            {"error": "Too many attempts: try again in a minute."}, 429, **{"Retry-After": "60"}
        )
    link = find_ack_link(token)
    if link is None or action not in ACTIONS:
        return _json({"error": "Unknown link."}, 404)
    now = timezone.now()
    actor = _actor(request, link)
    actor = Actor(
        actor.name.replace("(ACK link)", "(push button)"), person=actor.person, ip=actor.ip
    )
    try:
        with transaction.atomic():  # the button is spent only together with what it did
            if not AckLink.objects.filter(pk=link.pk, action_used_at=None).update(
                action_used_at=now, last_used_at=now
            ):
                used = AckLink.objects.get(pk=link.pk).action_used_at
                text = f"This button was used at {clock(used)}."
                return _json({"error": text, "status": link.alarm.status}, 409)
            if action == "claim":
                outcome = lifecycle.claim(link.alarm_id, actor)
            else:
                outcome = lifecycle.acknowledge(link.alarm_id, actor)
    except lifecycle.AlarmClosed as exc:
        text = f"{exc.alarm.title} was {exc.alarm.status} by {exc.alarm.resolved_by or 'someone'}"
        return _json({"error": text, "status": exc.alarm.status}, 410)
    alarm = outcome.alarm
    if outcome.changed or action == "claim":
        text = f"{ACTIONS[action]}: {alarm.title}"
    else:
        text = f"{alarm.title} was already acknowledged by {alarm.acknowledged_by}"
    return _json({"text": text, "status": alarm.status, "changed": outcome.changed})


def _json(body: dict, status: int = 200, **headers) -> JsonResponse:
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


@login_required
def board_page(request):
    """The dispatch board: the page itself; its data arrives over /ws/board/."""
    if not board.can_watch(request.user):
        return render(request, "alarms/board_forbidden.html", status=403)
    user = request.user
    person = getattr(user, "person", None)
    context = {
        "sites": Site.objects.order_by("name"),
        "teams": Team.objects.order_by("name"),
        # Whose on-call the header shows: the teams this dispatcher is in (all when none).
        "followed_teams": list(person.teams.values_list("pk", flat=True)) if person else [],
        "severities": Severity.choices,
        "may": {action: user.has_perm(perm) for action, perm in board.ACTION_PERMISSIONS.items()},
    }
    return render(request, "alarms/board.html", context)
