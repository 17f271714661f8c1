"""What a board receives on connect: every open alarm, in parts, most urgent first."""

import json

from django.db.models import Case, F, IntegerField, When

from observability import health

from .. import storms
from ..models import OPEN_STATUSES, SEVERITY_RANK, Alarm
from . import keep_watched
from .cards import cards_of

# The snapshot goes in parts, most urgent first, so the first screenful shows at once and no
# WebSocket message comes near a frame limit (1 MiB at many proxies and servers): the first
# part holds this many cards, each later one this many, and none more than this many bytes.
SNAPSHOT_FIRST, SNAPSHOT_PART, SNAPSHOT_PART_BYTES = 60, 500, 256 * 1024


class Snapshot:
    """Every open alarm, as a board receives it on connect: in parts, most urgent first (a
    person's press, the last pressed first; then by severity, the last to fire first). The
    first message is `snapshot` (the sequence number, how many alarms, the outbox backlog),
    the others `snapshot_part`; the last says `done`. Only a snapshot done says what is open."""

    def __init__(self):
        # Read the sequence before the database: any event numbered up to it was committed
        # before these queries ran, so the snapshot already holds it. Any later one is sent.
        self.seq, self.epoch = keep_watched() or (0, "")
        self.ids = list(by_urgency(Alarm.objects.filter(status__in=OPEN_STATUSES)))
        self.outbox = health.outbox_backlog() or []
        # The alarm ids of each part, to be read one part at a time.
        ids, first, size = self.ids, SNAPSHOT_FIRST, SNAPSHOT_PART
        self.parts = [ids[:first]] + [ids[i : i + size] for i in range(first, len(ids), size)]

    def messages(self, number: int) -> list[str]:
        """The messages of part `number` (from 0): its cards as read now, split by size."""
        ids = self.parts[number]
        order = {str(pk): index for index, pk in enumerate(ids)}
        alarms = sorted(cards_of(Alarm.objects.filter(pk__in=ids)), key=lambda c: order[c["id"]])
        pieces, size = [[]], 0
        for text in map(json.dumps, alarms):
            if pieces[-1] and size + len(text) > SNAPSHOT_PART_BYTES:
                pieces.append([])
                size = 0
            pieces[-1].append(text)
            size += len(text) + 1
        last = number == len(self.parts) - 1
        texts = []
        for index, piece in enumerate(pieces):
            head = {"type": "snapshot_part", "seq": self.seq,
                    "done": last and index == len(pieces) - 1}  # fmt: skip
            if number == 0 and index == 0:
                head.update(type="snapshot", total=len(self.ids), outbox=self.outbox,
                            epoch=self.epoch)  # fmt: skip
            texts.append(f'{json.dumps(head)[:-1]}, "alarms": [{",".join(piece)}]}}')
        return texts


def by_urgency(alarms):
    """The ids of these alarms, most urgent first, as the board sorts them."""
    person = storms.PERSON_PRESS
    # A person's presses by their latest alone, whatever their severity.
    rank = [When(person, then=0)]
    rank += [When(severity=severity, then=value) for severity, value in SEVERITY_RANK.items()]
    return (
        alarms.annotate(
            band=Case(When(person, then=0), default=1, output_field=IntegerField()),
            rank=Case(*rank, default=9, output_field=IntegerField()),
        )
        .order_by("band", "rank", F("last_occurrence_at").desc(nulls_last=True), "-created_at")
        .values_list("pk", flat=True)
    )
