"""The sign-in page, answering 429 while sign-in is throttled, and the password reset page,
answering 429 while reset requests are."""

from django.contrib.auth import views as auth_views

from core import client_address

from . import login_throttle, reset_throttle
from .forms import ThrottledAuthenticationForm


def throttled(response, retry_after: int):
    response.status_code = 429
    response["Retry-After"] = str(retry_after)
    return response


def mark_throttled(response):
    """A sign-in page showing the throttle message is answered 429, with Retry-After."""
    form = (getattr(response, "context_data", None) or {}).get("form")
    if getattr(form, "throttled", False):
        throttled(response, login_throttle.retry_after())
    return response


class LoginView(auth_views.LoginView):
    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form):
        return mark_throttled(super().form_invalid(form))


class PasswordResetView(auth_views.PasswordResetView):
    """Django's, limited per client address and per email address. Under the limits it answers
    as Django's does whether or not an account has the address; over them, 429 alike."""

    def form_valid(self, form):
        ip, email = client_address.of_request(self.request), form.cleaned_data["email"]
        if reset_throttle.allow(ip, email):
            return super().form_valid(form)
        wait = reset_throttle.retry_after()
        form.add_error(
            "email",
            f"Too many password reset requests. Try again in {-(-wait // 60)} minutes.",
        )
        return throttled(self.form_invalid(form), wait)
