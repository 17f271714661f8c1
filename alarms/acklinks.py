"""Per-recipient acknowledgement links: the token is in the URL, only its hash is stored."""

from django.conf import settings
from django.urls import reverse

from core.tokens import hash_token, new_token

from .models import AckLink


def issue_ack_link(alarm, person=None, channel=None) -> str:
    """Create a link for this person (or for the readers of this channel) on this alarm and
    return its full URL."""
    token = new_token()
    AckLink.objects.create(
        alarm=alarm, person=person, channel=channel, token_hash=hash_token(token)
    )
    return settings.PUBLIC_BASE_URL + reverse("ack", args=[token])


def find_ack_link(token: str) -> AckLink | None:
    """The link this token opens. Lookup is by hash, so timing reveals nothing of the token."""
    if not token or len(token) > 100:
        return None
    return (
        AckLink.objects.select_related("alarm", "person", "channel", "alarm__site", "alarm__room")
        .filter(token_hash=hash_token(token))
        .first()
    )
