"""Sign-in forms for the board and the admin, throttled against password guessing."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from core import client_address

from . import login_throttle, roles


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed sign-ins. Try again in %(minutes)s minutes.",
    }

    def clean(self):
        ip, username = client_address.of_request(self.request), self.data.get("username", "")
        if login_throttle.blocked(ip, username):
            minutes = -(-login_throttle.retry_after() // 60)
            raise forms.ValidationError(
                self.error_messages["throttled"], code="throttled", params={"minutes": minutes}
            )
        try:
            return super().clean()
        except forms.ValidationError:
            login_throttle.failed(ip, username)
            raise

    @property
    def throttled(self) -> bool:
        return any(error.code == "throttled" for error in self.non_field_errors().as_data())


class AdminAuthenticationForm(ThrottledAuthenticationForm):
    """The admin is for those who configure (Operators): the role decides, not the staff flag."""

    error_messages = {
        **ThrottledAuthenticationForm.error_messages,
        "not_operator": "This account may not change the configuration. Dispatch and viewers "
        "use the board.",
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not roles.may_configure(user):
            raise forms.ValidationError(self.error_messages["not_operator"], code="not_operator")
