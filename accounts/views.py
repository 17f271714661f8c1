"""The sign-in page, answering 429 while sign-in is throttled."""

from django.contrib.auth import views as auth_views

from . import login_throttle
from .forms import ThrottledAuthenticationForm


def mark_throttled(response):
    """A sign-in page showing the throttle message is answered 429, with Retry-After."""
    form = (getattr(response, "context_data", None) or {}).get("form")
    if getattr(form, "throttled", False):
        response.status_code = 429
        response["Retry-After"] = str(login_throttle.retry_after())
    return response


class LoginView(auth_views.LoginView):
    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form):
        return mark_throttled(super().form_invalid(form))
