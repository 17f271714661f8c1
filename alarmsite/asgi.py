"""ASGI entry point for daphne: HTTP to Django, WebSockets to the Channels routes."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alarmsite.settings")
# Each HTTP request runs its sync code on a thread of its own, so a connection kept by a thread
# is never reused and they pile up until PostgreSQL refuses more: on PostgreSQL the web process
# borrows from a pool (DATABASE_POOL=false: a connection per request), and never keeps one per
# thread whatever CONN_MAX_AGE says. Worker and beat, on long-lived threads, keep theirs.
os.environ.setdefault("DATABASE_POOL", "true")
os.environ["CONN_MAX_AGE"] = "0"
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from alarms.board.websocket_urls import websocket_urlpatterns  # noqa: E402
from alarms.ingest.fast_path import DeviceFastPath  # noqa: E402
from core.websocket_origin import OriginCheck  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": DeviceFastPath(django_asgi_app),
        # Only pages of PUBLIC_BASE_URL and CSRF_TRUSTED_ORIGINS (scheme, host and port).
        "websocket": OriginCheck(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# What is loaded by now lives as long as the process: keep it out of the collector's full
# passes, which under load otherwise held every request up for 60-80 ms every few seconds.
gc.freeze()
