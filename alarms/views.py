"""Pages: the ACK link (GET shows the alarm and a button, POST acts; link scanners change
nothing) and the dispatch board."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core import client_address, rate_limits
from devices.models import Site
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


@require_http_methods(["GET", "POST"])
def ack(request, token: str):
    # Counted before the lookup, so guessing links is as slow as using them.
    if not rate_limits.allow(
        f"ack:{client_address.of_request(request)}", settings.ACK_RATE_PER_MINUTE
    ):
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
