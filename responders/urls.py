"""Routes of responders' answers: replies (SMS) and calls (Twilio Voice)."""

from django.urls import path

from . import twilio_voice, views

urlpatterns = [
    path("replies/twilio", views.twilio_sms, name="reply-twilio"),
    path("replies/sms/<str:token>", views.gateway_sms, name="reply-gateway"),
    path("calls/twilio/<str:token>/<str:step>", twilio_voice.callback, name="call-twilio"),
]
