"""Every API error is JSON: DRF's own, a source's refusal, and the ones Django raises before DRF
sees the data."""

from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ..sources.refusal import Refused, invalid_input

# The database is down or every pooled connection stayed busy: nothing was stored, so the
# sender is told to try again rather than that it sent something wrong.
STORE_UNAVAILABLE = {"error": "the alarm store is unavailable; nothing was stored, try again"}


def error(message: str, code: int, **headers) -> Response:
    """An API error answer: `{"error": message}` with this status and headers."""
    return Response({"error": message}, status=code, headers=headers)


def refused(refusal: Refused) -> Response:
    """A source's refusal as it says it."""
    return Response(refusal.body, status=refusal.status, headers=refusal.headers)


def json_exception_handler(exc, context):
    if isinstance(exc, Refused):
        return refused(exc)
    if isinstance(exc, RequestDataTooBig):
        return Response({"error": "request body too large"}, status=413)
    if isinstance(exc, OperationalError):
        return Response(STORE_UNAVAILABLE, status=503, headers={"Retry-After": "5"})
    if isinstance(exc, RecursionError):  # a body nested too deeply for a view's own parsing
        return Response({"error": "the body is nested too deeply"}, status=400)
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"error": str(response.data["detail"])}
    elif response is not None:
        response.data = invalid_input(response.data)
    return response
