"""Routes of the /v1/ API."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from configuration.api import SeedView

from .cap import CapView
from .integrations import AlertmanagerView, HeartbeatView, MetricsView, PagerDutyEventsView
from .views import AlarmViewSet, ClearView, RaiseView, YealinkAlarmView

router = SimpleRouter()
# Slash optional: DRF's constructor takes only a bool, and a POST cannot follow APPEND_SLASH's 301.
router.trailing_slash = "/?"
router.register("alarms", AlarmViewSet, basename="alarm")

urlpatterns = [
    path("yealink/alarm", YealinkAlarmView.as_view(), name="yealink-alarm"),
    path("alarms/raise", RaiseView.as_view(), name="alarm-raise"),
    path("alarms/clear", ClearView.as_view(), name="alarm-clear"),
    path("integrations/alertmanager", AlertmanagerView.as_view(), name="alertmanager"),
    path("integrations/pagerduty", PagerDutyEventsView.as_view(), name="pagerduty-events"),
    path("devices/heartbeat", HeartbeatView.as_view(), name="heartbeat"),
    path("cap", CapView.as_view(), name="cap"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("metrics/batch", MetricsView.as_view(batch=True), name="metrics-batch"),
    path("admin/seed", SeedView.as_view(), name="admin-seed"),
    *router.urls,
]
