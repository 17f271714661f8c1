"""Logins' API tokens and the audit trail of configuration changes."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.tokens import hash_token, new_token


class ApiToken(models.Model):
    """A user's key to the API: acts with that user's roles. Stored hashed, shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What it is for, e.g. 'dispatch tablet'.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["user__username", "name"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.user})"

    @classmethod
    def issue(cls, user, name: str) -> tuple["ApiToken", str]:
        """A new token for the user, and its plaintext: the only time it is readable."""
        token = new_token()
        return cls.objects.create(user=user, name=name, token_hash=hash_token(token)), token

    @classmethod
    def by_token(cls, token: str) -> "ApiToken | None":
        return (
            cls.objects.select_related("user")
            .filter(token_hash=hash_token(token), revoked_at=None)
            .first()
        )

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class AuditEntry(models.Model):
    """One change to the configuration: who, when, from where, what."""

    class Action(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        DELETED = "deleted"
        LOGIN = "login"
        LOGIN_FAILED = "login failed"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=200, help_text="Who did it (kept if the user is deleted).")
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        default_permissions = ["view"]
        permissions = [("configure", "Can change the configuration (admin, seed file)")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_repr}"
