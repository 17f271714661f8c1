"""Top-level routes: admin, API, ACK links, metrics."""

from django.contrib import admin
from django.urls import include, path

from alarms import views as alarm_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include("alarms.api.urls")),
    path("a/<str:token>", alarm_views.ack, name="ack"),
    path("", include("django_prometheus.urls")),
]

handler404 = "alarmsite.views.not_found"
handler500 = "alarmsite.views.server_error"
