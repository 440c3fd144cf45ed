"""Login throttling for /accounts/login/ and /admin/login/: failed attempts are counted per client address and
per account (the normalised username) in Redis; over either limit the form says when to try again and the
answer is a 429 with Retry-After. Successful logins cost one cache read and are never delayed.

The password-reset form (/accounts/password_reset/) is throttled the same way, counting every request."""

from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.views import PasswordResetView
from django.utils.text import format_lazy

from . import links, ratelimits

IP_SCOPE, ACCOUNT_SCOPE = "login-ip", "login-account"
RESET_IP_SCOPE, RESET_ACCOUNT_SCOPE = "reset-ip", "reset-account"


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
            self.request.throttle_retry_after = wait
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


class ThrottledPasswordResetForm(PasswordResetForm):
    """Every request counts, per address and per email, whether or not the email has an account: the limit and
    its message are the same for both, so they tell nobody who has one. The emailed link is built from
    SITE_URL, never from the request's Host header."""

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean(self):
        cleaned = super().clean()
        email = cleaned.get("email")
        if email and self.request is not None:
            wait = max(ratelimits.hit(RESET_IP_SCOPE, ratelimits.client_address(self.request),
                                      settings.PASSWORD_RESET_PER_IP),
                       ratelimits.hit(RESET_ACCOUNT_SCOPE, _account(email), settings.PASSWORD_RESET_PER_ACCOUNT))
            if wait:
                self.request.throttle_retry_after = wait
                # On the email field: the reset page shows that field's errors only.
                raise forms.ValidationError({"email": forms.ValidationError(format_lazy(
                    "Too many password reset requests. Try again in {}.", _wait_text(wait)), code="throttled")})
        return cleaned

    def save(self, **kwargs):
        kwargs.update(domain_override=links.site_domain(), use_https=links.site_uses_https(),
                      extra_email_context={**(kwargs.get("extra_email_context") or {}), "site_url": links.site_url()})
        return super().save(**kwargs)


class ThrottledPasswordResetView(PasswordResetView):
    form_class = ThrottledPasswordResetForm
    email_template_name = "registration/leadcrm_password_reset_email.txt"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


def with_retry_after(view):
    """A page refused for throttling answers 429 with Retry-After (the page itself shows the message)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        wait = getattr(request, "throttle_retry_after", 0)
        if wait and response.status_code == 200:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response

    return wrapped
