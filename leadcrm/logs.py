"""Structured logs: one JSON object per line (python-json-logger) with the request id, org id and task id of the
request or task that wrote it, kept in context variables so every logger gets them without passing them along."""

import contextvars
import logging
import re
import uuid

request_id = contextvars.ContextVar("request_id", default="")
org_id = contextvars.ContextVar("org_id", default="")
task_id = contextvars.ContextVar("task_id", default="")

# An incoming X-Request-ID (a proxy or a client tracing its call) is kept when it looks like an id; anything else is
# replaced, so a log line never carries text a caller made up.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ContextFilter(logging.Filter):
    """Adds request_id, org_id and task_id (empty when there is none) to every record."""

    def filter(self, record):
        record.request_id = request_id.get()
        record.org_id = org_id.get()
        record.task_id = task_id.get()
        return True


def bind_organization(organization) -> None:
    """The org a request or task acts for, from the moment it is known."""
    org_id.set(str(getattr(organization, "pk", organization) or ""))


class RequestIdMiddleware:
    """First in the chain: every log line of the request carries its id, and so does the response (X-Request-ID)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        value = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        # Set, not reset afterwards: Django logs a failed response (django.request) after the middleware returned,
        # and that line belongs to this request too. The next request on this thread sets both again first.
        request_id.set(value)
        org_id.set("")
        request.request_id = value
        response = self.get_response(request)
        response["X-Request-ID"] = value
        return response


def enter_task(task_request_id: str, organization) -> tuple:
    return task_id.set(task_request_id or ""), org_id.set(str(organization or ""))


def leave_task(tokens) -> None:
    if tokens:
        task_id.reset(tokens[0])
        org_id.reset(tokens[1])
