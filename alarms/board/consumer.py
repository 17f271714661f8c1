"""The dispatch board's WebSocket: a snapshot on connect, then live alarm events.

Actions sent over the socket (acknowledge, resolve, cancel) are checked against the user's
permissions and carried out by alarms.lifecycle, like every other change.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DatabaseError

from alarms import board, lifecycle
from alarms.board import snapshot
from alarms.models import Alarm
from alarms.timeline import user_actor
from core import client_address

log = logging.getLogger(__name__)

TRANSITIONS = {
    "acknowledge": lifecycle.acknowledge,
    "claim": lambda alarm_id, actor, note, eta=None: lifecycle.claim(alarm_id, actor, eta),
    "resolve": lifecycle.resolve,
    "cancel": lifecycle.cancel,
}

# Close codes the page understands: do not reconnect on these.
CLOSE_FORBIDDEN = 4403
CLOSE_LOGGED_OUT = 4401
CLOSE_TRY_AGAIN = 1013
SNAPSHOT_FAILED = "The board could not read the open alarms (the database did not answer)."
LIVE_UPDATES_DOWN = "Live updates are interrupted (Redis does not answer)."


def act(user, action: str, alarm_id, note: str, ip: str | None, eta=None) -> dict:
    """Carry out a board action for this user; return the answer for the page. A claim may
    carry its ETA in minutes."""
    if not user.has_perm(board.ACTION_PERMISSIONS[action]):
        return {"ok": False, "error": f"You may not {action} alarms."}
    extra = {}
    if action == "claim" and eta not in (None, ""):
        if not (isinstance(eta, int) or (isinstance(eta, str) and eta.isdigit())):
            return {"ok": False, "error": "The ETA is a number of minutes."}
        extra["eta"] = int(eta)
    try:
        outcome = TRANSITIONS[action](alarm_id, user_actor(user, ip), note[:2000], **extra)
    except lifecycle.AlarmClosed as exc:
        return {"ok": False, "error": f"The alarm is already {exc.alarm.status}."}
    except lifecycle.BadEta as exc:
        return {"ok": False, "error": f"The ETA must be {exc}."}
    except (Alarm.DoesNotExist, ValidationError, ValueError):
        return {"ok": False, "error": "No such alarm."}
    return {"ok": True, "changed": outcome.changed, "status": outcome.alarm.status}


def user_may_watch(user_id: int) -> bool:
    return board.can_watch(get_user_model().objects.filter(pk=user_id).first())


class BoardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.user = self.scope["user"]
        if not await database_sync_to_async(board.can_watch)(self.user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(board.GROUP, self.channel_name)
        await self.channel_layer.group_add(board.user_group(self.user.pk), self.channel_name)
        await self.accept()
        await self.send_snapshot()
        self.heartbeat = asyncio.create_task(self.beat())

    async def disconnect(self, code):
        if hasattr(self, "heartbeat"):
            self.heartbeat.cancel()
            await self.channel_layer.group_discard(board.GROUP, self.channel_name)
            await self.channel_layer.group_discard(
                board.user_group(self.user.pk), self.channel_name
            )

    async def send_snapshot(self):
        """Every open alarm, in parts (`snapshot.Snapshot`). Events for this socket wait until
        the last part went; each carries a higher number than the snapshot, so it wins. A
        snapshot that cannot be read is an error the page shows, then the socket closes (the
        page reconnects and asks again)."""
        try:
            whole = await database_sync_to_async(snapshot.Snapshot)()
            for number in range(len(whole.parts)):
                for text in await database_sync_to_async(whole.messages)(number):
                    await self.send(text_data=text)
        except DatabaseError:
            log.warning("could not read the board's snapshot", exc_info=True)
            await self.send_json({"type": "error", "error": SNAPSHOT_FAILED})
            await self.close(code=CLOSE_TRY_AGAIN)

    async def beat(self):
        """Every few seconds: prove the socket is alive, and drop users no longer allowed."""
        while True:
            await asyncio.sleep(settings.BOARD_HEARTBEAT_SECONDS)
            if not await database_sync_to_async(user_may_watch)(self.user.pk):
                await self.close(code=CLOSE_LOGGED_OUT)
                return
            watched = await database_sync_to_async(board.keep_watched)()
            if watched is None:  # changes cannot reach this board: it must not look up to date
                await self.send_json({"type": "error", "error": LIVE_UPDATES_DOWN, "live": False})
            else:
                seq, epoch = watched
                await self.send_json({"type": "heartbeat", "seq": seq, "epoch": epoch})

    async def receive_json(self, content, **kwargs):
        action = content.get("action") if isinstance(content, dict) else None
        if action == "resync":
            await self.send_snapshot()
            return
        if action not in TRANSITIONS:
            await self.send_json({"type": "result", "ok": False, "error": "Unknown action."})
            return
        answer = await database_sync_to_async(act)(
            self.user,
            action,
            content.get("alarm_id"),
            str(content.get("note") or ""),
            client_address.of_scope(self.scope),
            content.get("eta_minutes"),
        )
        await self.send_json({"type": "result", "action": action, **answer})

    async def board_alarm(self, event):
        await self.send(text_data=event["text"])

    async def board_disconnect(self, event):
        await self.close(code=CLOSE_LOGGED_OUT)
