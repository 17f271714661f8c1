"""The board's WebSocket route."""

from django.urls import path

from .consumer import BoardConsumer

websocket_urlpatterns = [path("ws/board/", BoardConsumer.as_asgi())]
