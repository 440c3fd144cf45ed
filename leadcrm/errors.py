"""The one family of errors the service layer raises when it refuses an action or its input.

Services never answer HTTP; they raise one of these. DRF's exception handler (`leadcrm.api.exception_handler`)
turns them into API answers and `leadcrm.middleware.DomainErrorMiddleware` into browser answers, once each, so
no view translates them by hand. Every error carries a stable machine-readable `code` beside the human message.

This module imports nothing from the apps: every app may raise these.
"""


class DomainError(Exception):
    """A refused action. `message` is for people; `errors` ({field: [messages]}) names the fields at fault;
    `code` is for programs (the class's `default_code` when not given); `extra` adds fields to the API's answer
    (such as where a deal is now, beside a 409 for a move that came too late)."""

    status = 400
    default_code = "error"

    def __init__(self, message: str | None = None, *, errors: dict[str, list[str]] | None = None,
                 code: str | None = None, extra: dict | None = None):
        self.errors = errors or {}
        self.extra = extra or {}
        if message is None:
            message = "; ".join(f"{field}: {' '.join(problems)}" for field, problems in self.errors.items())
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    @property
    def messages(self) -> list[str]:
        """Every message, field by field; the message itself when no field is named."""
        flat = [message for problems in self.errors.values() for message in problems]
        return flat or [self.message]

    def __str__(self):
        return self.message


class Invalid(DomainError):
    """The input cannot be used (400); `errors` says which field and why."""

    status = 400
    default_code = "invalid"


class Conflict(DomainError):
    """The input is well formed, but the state of things refuses it (409)."""

    status = 409
    default_code = "conflict"


class Forbidden(DomainError):
    """The actor may not do this (403, in the API and the browser alike, as the policy's refusals)."""

    status = 403
    default_code = "permission_denied"


class NotFound(DomainError):
    """No such thing, or not one the actor may see (404)."""

    status = 404
    default_code = "not_found"


class TooLarge(Invalid):
    """The input is larger than accepted (413)."""

    status = 413
    default_code = "too_large"


def add_to_form(form, exc: DomainError) -> None:
    """Show a refusal in the form that was posted: each message at its field, or above the form when the form has
    no such field (or the refusal names none)."""
    for field, problems in exc.errors.items():
        form.add_error(field if field in form.fields else None, problems)
    if not exc.errors:
        form.add_error(None, exc.message)
