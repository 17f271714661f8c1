"""Top-level routes: admin, API, ACK links, the board, logins, metrics."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import LoginView, PasswordResetView
from alarms import views as alarm_views
from alarms.api import opsgenie
from alarms.api.integrations import PagerDutyEventsView
from observability import metrics_view
from oncall.views import calendar_feed
from responders import me

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file of its own: no inline script.
    path("v1/docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("v1/", include("alarms.api.urls")),
    path("v1/", include("oncall.urls")),
    path("v1/", include("responders.urls")),
    # PagerDuty's own path: a tool that lets you change only the host can send here.
    path("v2/enqueue", PagerDutyEventsView.as_view(), name="pagerduty-enqueue"),
    # Opsgenie's own paths, for the same reason. An alias may hold a slash (sent as %2F).
    path("v2/alerts", opsgenie.AlertsView.as_view(), name="opsgenie-alerts"),
    path(
        "v2/alerts/requests/<str:request_id>",
        opsgenie.RequestStatusView.as_view(),
        name="opsgenie-request",
    ),  # fmt: skip
    re_path(
        r"^v2/alerts/(?P<identifier>.+)/close$",
        opsgenie.AlertActionView.as_view(action="close"),
        name="opsgenie-close",
    ),  # fmt: skip
    re_path(
        r"^v2/alerts/(?P<identifier>.+)/acknowledge$",
        opsgenie.AlertActionView.as_view(action="acknowledge"),
        name="opsgenie-ack",
    ),  # fmt: skip
    path(
        "v2/heartbeats/<str:name>/ping", opsgenie.HeartbeatPingView.as_view(), name="opsgenie-ping"
    ),  # fmt: skip
    path("a/<str:token>", alarm_views.ack, name="ack"),
    path("a/<str:token>/<str:action>", alarm_views.ack_action, name="ack-action"),
    path("calendar/<str:token>.ics", calendar_feed, name="calendar-feed"),
    path("board/", alarm_views.board_page, name="board"),
    path("me/", me.page, name="me"),
    path("me/sw.js", me.service_worker, name="me-worker"),
    path("me/manifest.webmanifest", me.manifest, name="me-manifest"),
    path("me/push-subscriptions", me.subscribe, name="me-subscribe"),
    path("me/alarms/<uuid:alarm_id>/<str:action>", me.act, name="me-act"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("metrics", metrics_view.metrics, name="prometheus-django-metrics"),
    # Browsers ask for it on every page; the board's own pages link the same file.
    path("favicon.ico", RedirectView.as_view(url=static("alarms/favicon.ico")), name="favicon"),
]

handler404 = "alarmsite.views.not_found"
handler500 = "alarmsite.views.server_error"
