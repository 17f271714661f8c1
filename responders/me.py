"""The responder page (`/me/`): a person's open alarms with Acknowledge and On my way, their
shifts of the week, and Web Push on the device that keeps the page (a service worker, VAPID).
Installable as an app; it needs the person's login (Person.user)."""

import json
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from alarms import lifecycle
from alarms.models import OPEN_STATUSES, SEVERITY_RANK, Alarm
from alarms.timeline import Actor
from core import client_address, vapid
from notifications.models import PushSubscription
from notifications.transports import webpush
from notifications.transports.base import NOTIFY
from oncall.calendar import person_shifts

SERVICE_WORKER = "responders/sw.js"


def _person(request):
    return getattr(request.user, "person", None)


def _actor(request, person) -> Actor:
    return Actor(f"{person.name} (responder page)", person=person, user=request.user,
                 ip=client_address.of_request(request))  # fmt: skip


def my_alarms(person) -> list[Alarm]:
    """The open alarms a step paged this person about in their current cycle, most severe
    first."""
    paged = Alarm.objects.filter(status__in=OPEN_STATUSES, deliveries__person=person,
                                 deliveries__event=NOTIFY).distinct()  # fmt: skip
    alarms = [a for a in paged.select_related("site", "room", "device")
              if a.deliveries.filter(person=person, cycle=a.reopen_count).exists()]  # fmt: skip
    return sorted(alarms, key=lambda a: (SEVERITY_RANK.get(a.severity, 9), a.created_at))


@login_required
@require_GET
def page(request):
    person = _person(request)
    if person is None:
        return render(request, "responders/me_no_person.html", status=403)
    now = timezone.now()
    context = {
        "person": person,
        "alarms": my_alarms(person),
        "shifts": person_shifts(person.pk, now, now + timedelta(days=7)),
        "vapid_key": vapid.public_key(),
        "devices": person.push_subscriptions.count(),
    }
    return render(request, "responders/me.html", context)


@login_required
@require_POST
def act(request, alarm_id, action: str):
    """Acknowledge, or say you are on the way (in `eta` minutes), then back to the page."""
    person = _person(request)
    if person is None or action not in ("acknowledge", "claim"):
        return render(request, "responders/me_no_person.html", status=403)
    if not any(str(a.pk) == str(alarm_id) for a in my_alarms(person)):
        return render(request, "alarms/ack_invalid.html", status=404)
    try:
        if action == "claim":
            eta = request.POST.get("eta", "").strip()
            lifecycle.claim(alarm_id, _actor(request, person), int(eta) if eta.isdigit() else None)
        else:
            lifecycle.acknowledge(alarm_id, _actor(request, person))
    except (lifecycle.AlarmClosed, lifecycle.BadEta):
        pass  # the page shows what the alarm is now
    return redirect("me")


@login_required
@require_POST
def subscribe(request):
    """This browser takes Web Push for the person: its subscription (PushSubscription.toJSON
    in the page's script), stored or renewed by its endpoint."""
    person = _person(request)
    if person is None:
        return JsonResponse({"error": "This login is not a person's."}, status=403)
    try:
        body = json.loads(request.body)
        endpoint, keys = body["endpoint"], body["keys"]
        p256dh, auth = str(keys["p256dh"]), str(keys["auth"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "Expected {endpoint, keys: {p256dh, auth}}."}, status=400)
    if len(str(endpoint)) > 1000 or not webpush.endpoint_allowed(str(endpoint)):
        return JsonResponse({"error": "The endpoint is not a push service's."}, status=400)
    if not (20 <= len(p256dh) <= 200 and 8 <= len(auth) <= 50):
        return JsonResponse({"error": "The keys are not a browser's."}, status=400)
    PushSubscription.objects.update_or_create(
        endpoint=endpoint, defaults={"person": person, "p256dh": p256dh, "auth": auth,
                                     "user_agent": request.headers.get("User-Agent", "")[:300]},
    )  # fmt: skip
    kept = person.push_subscriptions.order_by("-created_at", "-pk")[: webpush.MOST_BROWSERS]
    person.push_subscriptions.exclude(pk__in=list(kept.values_list("pk", flat=True))).delete()
    return JsonResponse({"subscribed": True, "devices": person.push_subscriptions.count()},
                        status=201)  # fmt: skip


@require_GET
def service_worker(request):
    """The service worker, served from /me/ so that its scope is the page."""
    with open(finders.find(SERVICE_WORKER), "rb") as file:
        response = HttpResponse(file.read(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def manifest(request):
    """What makes the page installable as an app."""
    body = {
        "name": "Alarms", "short_name": "Alarms", "start_url": "/me/", "scope": "/me/",
        "display": "standalone", "background_color": "#f4f4f6", "theme_color": "#b00020",
        "icons": [{"src": static("alarms/favicon.ico"), "sizes": "48x48",
                   "type": "image/x-icon"}],
    }  # fmt: skip
    return JsonResponse(body, content_type="application/manifest+json")
