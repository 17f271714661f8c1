"""Inbound replies over HTTP: Twilio's incoming-message webhook and a generic SMS gateway's.

Each stores the reply (it is then the worker's to handle, once) and answers the provider at
once; what the reply does and the answer to the sender follow from the worker. A request that
is not the provider's is refused: Twilio's without a valid signature with 403, a gateway's with
an unknown token with 404, counted per address so tokens cannot be guessed quickly.
"""

import json

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from core import client_address, rate_limits
from core.task_queue import enqueue

from . import inbound, replies

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def public_urls(request) -> list[str]:
    """The URL the provider called, as it knows it (PUBLIC_BASE_URL behind a proxy), and as
    this request says."""
    return [settings.PUBLIC_BASE_URL.rstrip("/") + request.get_full_path(),
            request.build_absolute_uri()]  # fmt: skip


def twiml(body: str = EMPTY_TWIML, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/xml; charset=utf-8")


def _stored(reply) -> None:
    if reply is not None:
        enqueue("responders.tasks.handle", reply.pk)  # else the sweep takes it


@csrf_exempt
@require_http_methods(["POST"])
def twilio_sms(request):
    """Twilio's incoming-message webhook (A MESSAGE COMES IN on the number, HTTP POST)."""
    channel = inbound.signed_by_twilio(request, ("twilio",), public_urls(request))
    if channel is None:
        return JsonResponse({"error": "the request signature is missing or wrong"}, status=403)
    sender, sid = request.POST.get("From", ""), request.POST.get("MessageSid", "")
    if not sender:
        return JsonResponse({"error": "From is required"}, status=400)
    _stored(replies.receive(channel, "sms", sender, request.POST.get("Body", ""), sid))
    return twiml()


@csrf_exempt
@require_http_methods(["GET", "POST"])
def gateway_sms(request, token: str):
    """A generic SMS gateway's forward of an incoming message: form, JSON or query string, with
    the field names its channel configures."""
    if not rate_limits.allow(
        f"inbound:{client_address.of_request(request)}", settings.INBOUND_RATE_PER_MINUTE
    ):
        return JsonResponse({"error": "too many requests; try again in a minute"}, status=429,
                            headers={"Retry-After": "60"})  # fmt: skip
    channel = inbound.gateway_by_token(token)
    if channel is None:
        return JsonResponse({"error": "no SMS gateway has this inbound token"}, status=404)
    data = _gateway_data(request)
    if data is None:
        return JsonResponse({"error": "the body is not valid JSON"}, status=400)
    config = channel.config
    sender = inbound.field(data, config.get("inbound_from_field") or "from")
    text = inbound.field(data, config.get("inbound_text_field") or "text")
    if not sender:
        name = config.get("inbound_from_field") or "from"
        return JsonResponse({"error": f"the sender field '{name}' is missing"}, status=400)
    provider_id = inbound.field(data, config.get("inbound_id_field") or "id")
    reply = replies.receive(channel, "sms", sender, text, provider_id)
    _stored(reply)
    return JsonResponse({"ok": True, "duplicate": reply is None}, status=202)


def _gateway_data(request) -> dict | None:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return {**request.GET.dict(), **request.POST.dict()}
