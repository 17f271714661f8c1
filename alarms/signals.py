"""Close a user's board sockets when they log out or lose their account."""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import board


@receiver(user_logged_out)
def close_board_on_logout(sender, user, **kwargs):
    if user is not None:
        board.disconnect_user(user.pk)


@receiver(post_save, sender=get_user_model())
def close_board_of_deactivated_user(sender, instance, **kwargs):
    if not instance.is_active:
        board.disconnect_user(instance.pk)
