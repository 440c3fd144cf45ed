"""Login throttling for /accounts/login/ and /admin/login/: failed attempts are counted per client address and
per account (the normalised username) in Redis; over either limit the form says when to try again and the
answer is a 429 with Retry-After. Successful logins cost one cache read and are never delayed."""

from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.utils.text import format_lazy

from . import ratelimits

IP_SCOPE, ACCOUNT_SCOPE = "login-ip", "login-account"


def _account(username) -> str:
    return str(username or "").strip().lower()


def locked_for(request, username) -> int:
    """Seconds before this address or account may try again (0: it may try now)."""
    return max(ratelimits.hit(IP_SCOPE, ratelimits.client_address(request), settings.LOGIN_FAILURES_PER_IP,
                              increment=False),
               ratelimits.hit(ACCOUNT_SCOPE, _account(username), settings.LOGIN_FAILURES_PER_ACCOUNT,
                              increment=False))


def record_failure(request, username) -> None:
    ratelimits.hit(IP_SCOPE, ratelimits.client_address(request), settings.LOGIN_FAILURES_PER_IP)
    ratelimits.hit(ACCOUNT_SCOPE, _account(username), settings.LOGIN_FAILURES_PER_ACCOUNT)


def record_success(request, username) -> None:
    # The account's owner got in: earlier typos no longer count against them (the address's count stays).
    ratelimits.reset(ACCOUNT_SCOPE, _account(username), settings.LOGIN_FAILURES_PER_ACCOUNT)


def _wait_text(seconds: int) -> str:
    minutes = -(-seconds // 60)
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class ThrottledLoginMixin:
    """Checks the limits before the password is tested, counts a wrong password after."""

    def clean(self):
        username = self.cleaned_data.get("username")
        wait = locked_for(self.request, username)
        if wait:
            self.request.login_retry_after = wait
            raise forms.ValidationError(
                format_lazy("Too many failed login attempts. Try again in {}.", _wait_text(wait)), code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if getattr(error, "code", None) == "invalid_login":
                record_failure(self.request, username)
            raise
        record_success(self.request, username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


def with_retry_after(view):
    """A login page refused for throttling answers 429 with Retry-After (the page itself shows the message)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        wait = getattr(request, "login_retry_after", 0)
        if wait and response.status_code == 200:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response

    return wrapped
