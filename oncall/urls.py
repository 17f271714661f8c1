"""Routes of the on-call API, under /v1/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from .views import OnCallView, OverrideViewSet, ShiftsView

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("overrides", OverrideViewSet, basename="oncall-override")

urlpatterns = [
    path("oncall", OnCallView.as_view(), name="oncall"),
    path("oncall/shifts", ShiftsView.as_view(), name="oncall-shifts"),
    path("oncall/", include(router.urls)),
]
