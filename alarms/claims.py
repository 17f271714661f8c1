"""Claims past their ETA: the sweep's part of "claimed but not arrived"."""

from django.utils import timezone

from . import lifecycle
from .models import Alarm, Status


def escalate_late(limit: int = 100) -> int:
    """Escalate again every open alarm whose claims are all past their ETA (its policy asks for
    it, `EscalationPolicy.escalate_late_claims`); return how many did."""
    late = Alarm.objects.filter(status=Status.ACKNOWLEDGED, late_claims_at__lte=timezone.now())
    ids = late.order_by("late_claims_at").values_list("pk", flat=True)[:limit]
    return sum(lifecycle.escalate_late_claims(alarm_id).changed for alarm_id in ids)
