"""Twilio Voice's callbacks for a call the broker placed: TwiML that reads the alarm and
gathers a key, and the status callback that says how the call ended.

Each URL names its delivery by a signed reference, and every request must carry Twilio's
signature made with that channel's auth token: neither alone lets anyone press a key.
"""

import re
from xml.sax.saxutils import escape, quoteattr

from django.conf import settings
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import calls, inbound
from .views import public_urls, twiml

Outcome = calls.Outcome
MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")
ENDED = {"busy": Outcome.BUSY, "no-answer": Outcome.NO_ANSWER, "failed": Outcome.FAILED,
         "canceled": Outcome.FAILED}  # fmt: skip


def _url(token: str, step: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("call-twilio", args=[token, step])


# Characters XML 1.0 does not allow (alarm text may carry them): Twilio could not read the
# document, and the responder would hear an application error instead of the alarm.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _say(text: str) -> str:
    return f"<Say>{escape(NOT_XML.sub(' ', text))}</Say>"


def _response(*verbs: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"


def _menu(delivery, token: str, before: str = "") -> str:
    """The script, read READINGS times inside a Gather: a key at any moment interrupts it."""
    text = calls.script(delivery)
    readings = '<Pause length="1"/>'.join(_say(text) for _ in range(calls.READINGS))
    action = quoteattr(_url(token, "key"))
    return _response(
        _say(before) if before else "",
        f'<Gather input="dtmf" numDigits="1" timeout="6" action={action} method="POST">'
        f"{readings}</Gather>",
        _say("No key was pressed. Goodbye."),
        "<Hangup/>",
    )


def _goodbye(name: str) -> str:
    return _response(_say(calls.SAID[name]), "<Hangup/>")


@csrf_exempt
@require_http_methods(["POST"])
def callback(request, token: str, step: str):
    delivery = calls.delivery_of(token)
    if delivery is None or delivery.channel is None or delivery.channel.kind != "twilio_voice":
        return JsonResponse({"error": "no such call"}, status=404)
    auth_token = delivery.channel.config.get("auth_token", "")
    if not inbound.signed_with(request, auth_token, public_urls(request)):
        return JsonResponse({"error": "the request signature is missing or wrong"}, status=403)
    handler = STEPS.get(step)
    if handler is None:
        return JsonResponse({"error": f"no step {step!r}"}, status=404)
    return handler(request, delivery, token)


def _answer(request, delivery, token):
    """The call was answered: by a voicemail, the script once for it; by a person, the menu."""
    if request.POST.get("AnsweredBy", "") in MACHINE:
        calls.ended(delivery, Outcome.VOICEMAIL, f"Twilio AnsweredBy {request.POST['AnsweredBy']}")
        return twiml(_response(_say(calls.script(delivery)), "<Hangup/>"))
    if not delivery.alarm.is_open:
        return twiml(_goodbye("closed"))
    return twiml(_menu(delivery, token))


def _key(request, delivery, token):
    digit = request.POST.get("Digits", "")[:1]
    if digit == calls.CLAIM_KEY:
        action = quoteattr(_url(token, "eta"))
        return twiml(_response(
            f'<Gather input="dtmf" finishOnKey="#" numDigits="4" timeout="8" action={action} '
            f'method="POST" actionOnEmptyResult="true">{_say(calls.SAID["eta"])}</Gather>',
        ))  # fmt: skip
    said = calls.press(delivery, digit)
    if said == "repeat":
        return twiml(_menu(delivery, token))
    if said == "unknown_key":
        return twiml(_menu(delivery, token, before=calls.SAID["unknown_key"]))
    return twiml(_goodbye(said))


def _eta(request, delivery, token):
    digits = request.POST.get("Digits", "").rstrip("#")
    eta = int(digits) if digits.isdigit() else None
    return twiml(_goodbye(calls.press(delivery, calls.CLAIM_KEY, eta)))


def _status(request, delivery, token):
    """How the call ended; a key's outcome, recorded before, stands."""
    status, answered_by = request.POST.get("CallStatus", ""), request.POST.get("AnsweredBy", "")
    if status == "completed":
        outcome = Outcome.VOICEMAIL if answered_by in MACHINE else Outcome.NO_KEY
    elif status in ENDED:
        outcome = ENDED[status]
    else:
        return twiml()  # not an end (ringing, in-progress)
    calls.ended(delivery, outcome, f"Twilio {status}" + (f", {answered_by}" if answered_by else ""))
    return twiml()


STEPS = {"answer": _answer, "key": _key, "eta": _eta, "status": _status}
