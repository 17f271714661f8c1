"""A local server speaking Asterisk's REST interface (ARI) and its event websocket, for tests.

REST: `POST /ari/channels` (originate into an application), `POST /ari/channels/{id}/play`,
`DELETE /ari/playbacks/{id}`, `DELETE /ari/channels/{id}`, each behind HTTP basic auth, with
ARI's answers. Events: `GET /ari/events?app=…` upgrades to a websocket that carries ARI's
event shapes. The test plays the far end: `answer` (StasisStart), `press` (a DTMF digit),
`hang_up` (ChannelDestroyed with a Q.850 cause). A playback finishes by itself shortly after it
starts, as a short sound would (PlaybackFinished), unless it is stopped first.
"""

import asyncio
import base64
import json
import threading
from datetime import UTC, datetime

from aiohttp import WSMsgType, web

USER, PASSWORD = "alarmbroker", "ari-secret-5c1d"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class FakeAri:
    def __init__(self, playback_seconds: float = 0.05):
        self.playback_seconds = playback_seconds
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.channels: dict[str, dict] = {}
        self.plays: list[dict] = []  # {"channel": id, "media": [...], "id": playback id}
        self.sockets: list[web.WebSocketResponse] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    # --- the test's side -----------------------------------------------------------------

    def answer(self, channel_id: str) -> None:
        channel = self.channels[channel_id]
        channel["state"] = "Up"
        self.emit({"type": "StasisStart", "args": channel["args"], "channel": channel,
                   "replace_channel": None})  # fmt: skip

    def press(self, channel_id: str, digit: str) -> None:
        self.emit({"type": "ChannelDtmfReceived", "digit": digit, "duration_ms": 120,
                   "channel": self.channels[channel_id]})  # fmt: skip

    def hang_up(self, channel_id: str, cause: int = 16, cause_txt: str = "Normal Clearing"):
        channel = self.channels.pop(channel_id, None)
        if channel is None:
            return
        if channel["state"] == "Up":
            self.emit({"type": "StasisEnd", "channel": channel})
        self.emit({"type": "ChannelDestroyed", "cause": cause, "cause_txt": cause_txt,
                   "channel": channel})  # fmt: skip

    def connected(self) -> int:
        return len(self.sockets)

    def emit(self, event: dict) -> None:
        event = {**event, "timestamp": _now(), "application": "alarmbroker",
                 "asterisk_id": "00:00:00:00:00:01"}  # fmt: skip
        asyncio.run_coroutine_threadsafe(self._send(event), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    # --- the server ------------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/ari/events", self._events)
        app.router.add_post("/ari/channels", self._originate)
        app.router.add_post("/ari/channels/{id}/play", self._play)
        app.router.add_delete("/ari/channels/{id}", self._hangup_request)
        app.router.add_delete("/ari/playbacks/{id}", self._stop_playback)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _shutdown(self) -> None:
        for socket in list(self.sockets):
            await socket.close()
        await self.runner.cleanup()

    @web.middleware
    async def _auth(self, request, handler):
        self.requests.append((request.method, request.path, dict(request.query)))
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Authentication required"}, status=401)
        return await handler(request)

    async def _send(self, event: dict) -> None:
        for socket in list(self.sockets):
            await socket.send_str(json.dumps(event))

    async def _events(self, request):
        if request.query.get("app") != "alarmbroker":
            return web.json_response({"message": "Invalid application provided"}, status=400)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        try:
            async for message in socket:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets.remove(socket)
        return socket

    async def _originate(self, request):
        query = request.query
        if not query.get("endpoint") or not query.get("app"):
            return web.json_response({"message": "Endpoint must be specified"}, status=400)
        channel_id = query.get("channelId") or f"1764{len(self.channels)}.1"
        args = [a for a in query.get("appArgs", "").split(",") if a]
        tech, _, resource = query["endpoint"].partition("/")
        channel = {
            "id": channel_id, "name": f"{tech}/{resource}-0000000{len(self.channels) + 1}",
            "state": "Down", "caller": {"name": "Alarm", "number": "0"},
            "connected": {"name": "", "number": resource}, "accountcode": "",
            "dialplan": {"context": "default", "exten": "s", "priority": 1,
                         "app_name": "", "app_data": ""},
            "creationtime": _now(), "language": "en", "args": args,
            "endpoint": query["endpoint"], "timeout": query.get("timeout"),
        }  # fmt: skip
        self.channels[channel_id] = channel
        return web.json_response({k: v for k, v in channel.items() if k not in ("args",)})

    async def _play(self, request):
        channel_id = request.match_info["id"]
        if channel_id not in self.channels:
            return web.json_response({"message": "Channel not found"}, status=404)
        playback_id = request.query.get("playbackId") or f"pb-{len(self.plays)}"
        media = request.query.get("media", "").split(",")
        play = {"channel": channel_id, "media": media, "id": playback_id, "stopped": False}
        self.plays.append(play)
        self.loop.call_later(self.playback_seconds, lambda: asyncio.ensure_future(
            self._finished(play)))  # fmt: skip
        body = {"id": playback_id, "media_uri": media[0], "target_uri": f"channel:{channel_id}",
                "language": "en", "state": "queued"}  # fmt: skip
        return web.json_response(body, status=201)

    async def _finished(self, play: dict) -> None:
        if play.get("done") or play["channel"] not in self.channels:
            return
        play["done"] = True
        await self._send({"type": "PlaybackFinished", "timestamp": _now(),
                          "application": "alarmbroker",
                          "playback": {"id": play["id"], "media_uri": play["media"][0],
                                       "target_uri": f"channel:{play['channel']}",
                                       "language": "en", "state": "done"}})  # fmt: skip

    async def _stop_playback(self, request):
        play = next((p for p in self.plays if p["id"] == request.match_info["id"]), None)
        if play is None or play.get("done"):
            return web.json_response({"message": "Playback not found"}, status=404)
        play["stopped"] = True
        await self._finished(play)
        return web.Response(status=204)

    async def _hangup_request(self, request):
        channel_id = request.match_info["id"]
        if channel_id not in self.channels:
            return web.json_response({"message": "Channel not found"}, status=404)
        self.loop.call_soon(
            lambda: threading.Thread(target=self.hang_up, args=(channel_id,)).start()
        )
        return web.Response(status=204)
