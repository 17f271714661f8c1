"""The transport registry: one line per kind, which also gives the models their choices.

Person methods reach a person at their own address (email to Person.email); channel kinds
post to a configured destination (a webhook URL).
"""

from django.utils.module_loading import import_string

PERSON_METHODS = {
    "email": ("Email", "notifications.transports.email.EmailTransport"),
}

CHANNEL_KINDS = {
    "webhook": ("Generic JSON webhook", "notifications.transports.webhook.WebhookTransport"),
}


def choices(registry: dict) -> list[tuple[str, str]]:
    return [(kind, label) for kind, (label, _) in registry.items()]


def transport_class(kind: str):
    label_and_path = PERSON_METHODS.get(kind) or CHANNEL_KINDS.get(kind)
    if label_and_path is None:
        raise KeyError(f"no transport for {kind!r}")
    return import_string(label_and_path[1])
