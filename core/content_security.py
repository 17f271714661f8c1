"""Content-Security-Policy on every page: scripts only from our own static files, so HTML that
slipped into an alarm's text could never run; no framing; forms post only to us."""

from django.conf import settings


def content_security_policy(get_response):
    def middleware(request):
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response

    return middleware
