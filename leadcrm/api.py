"""Shared API plumbing: error format, strict serializers, idempotent creates."""

import copy
import hashlib
import json
import uuid

from django.db import IntegrityError, transaction
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from .errors import DomainError, Invalid
from .models import IdempotencyRecord
from .policy import Allowed


def exception_handler(exc, context):
    """Every error answer carries a stable `code` beside the human text: invalid input as
    {"errors": {field: [messages]}, "code": …}, anything else as {"detail": …, "code": …}."""
    if isinstance(exc, DomainError):
        set_rollback()  # as DRF does for its own errors: an atomic request keeps nothing of a refused one
        return Response(error_body(exc), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        data = exc.detail
        if isinstance(data, list):
            data = {"non_field_errors": data}
        response.data = {"errors": data, "code": Invalid.default_code}
    else:
        codes = exc.get_codes()
        # Only validation errors carry a dict of codes; any other error has the one its detail was made with.
        code = codes if isinstance(codes, str) else exc.default_code
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        response.data = {"detail": detail, "code": code}
    return response


def error_body(exc: DomainError) -> dict:
    """The JSON answer to a refused service call. Invalid input keeps the field-by-field shape clients read."""
    if isinstance(exc, Invalid):
        return {"errors": exc.errors or {"non_field_errors": [exc.message]}, "code": exc.code, **exc.extra}
    return {"detail": exc.message, "code": exc.code, **exc.extra}


MAX_JSON_DEPTH = 10


def storable_json(value, depth: int = 0):
    """Validator for free-form JSON (custom fields, activity properties): PostgreSQL's jsonb refuses
    NUL characters and lone surrogates, which json.loads lets through, and deep nesting has no use here."""
    if depth > MAX_JSON_DEPTH:
        raise serializers.ValidationError(f"Nested more than {MAX_JSON_DEPTH} levels deep.")
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError("Null characters are not allowed.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise serializers.ValidationError("Surrogate characters are not allowed.") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_json(key, depth)
            storable_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            storable_json(item, depth + 1)


class StrictSerializer(serializers.Serializer):
    """Rejects keys the serializer does not know or does not accept, instead of silently dropping them."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {name: ["Unknown field."] for name in data if name not in self.fields}
            # A value sent for a computed field (score, grade, created_at…) would otherwise vanish silently.
            errors.update({name: ["This field is read-only."] for name in data
                           if name in self.fields and self.fields[name].read_only})
            if errors:
                raise serializers.ValidationError(dict(sorted(errors.items())))
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    def get_fields(self):
        # ModelSerializer introspects the model on every instantiation, which cost more than the rest of a
        # capture request. The fields depend only on the class: build them once, give each instance copies.
        template = type(self).__dict__.get("_fields_template")
        if template is None:
            template = super().get_fields()
            type(self)._fields_template = template
        return {name: _copy_field(field) for name, field in template.items()}

    def get_validators(self):
        # Likewise derived from the model's constraints on every instantiation; the validators keep no state
        # (they are handed the serializer when called), so the class's list serves every instance.
        validators = type(self).__dict__.get("_validators_template")
        if validators is None:
            validators = super().get_validators()
            type(self)._validators_template = validators
        return list(validators)


def _copy_field(field):
    """A copy an instance may bind. Binding sets only the copy's own attributes, so a copy of the attributes will
    do: a fraction of what a deep copy costs (it runs the field's __init__ again), and of copy.copy's generic
    protocol. A list or dict field gets its own child, whose parent is the copy; a field with fields inside (a nested
    serializer, a many-related field) is copied deep, so those bind to the copy and reach its context."""
    if isinstance(field, (serializers.BaseSerializer, serializers.ManyRelatedField)):
        return copy.deepcopy(field)
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    if isinstance(field, (serializers.ListField, serializers.DictField)):
        clone.child = _copy_field(field.child)  # bound already (to the template): only its parent changes
        clone.child.parent = clone
    return clone


IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"


# How an error answer looks in the OpenAPI schema.
CONFLICT_RESPONSE = OpenApiResponse(
    inline_serializer("Conflict", {"detail": serializers.CharField(), "code": serializers.CharField()}),
    description="Refused; `detail` says why, `code` (e.g. `conflict`, `stage_not_allowed`) says it to programs.")


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request."
    default_code = "idempotency_key_reused"


def idempotent(handler):
    """Wrap a POST handler: a repeat of the same Idempotency-Key returns the first answer, creating nothing.

    The key row is inserted in the same transaction as the work, so a concurrent repeat waits on the
    unique index until the first commits, then replays its stored answer; a failed first try leaves
    no key behind and may be retried.
    """

    def wrapper(self, request, *args, **kwargs):
        key = request.META.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            return handler(self, request, *args, **kwargs)
        if len(key) > 255:
            raise exceptions.ValidationError({"Idempotency-Key": ["At most 255 characters."]})
        body = json.dumps(request.data, sort_keys=True, default=str)
        fingerprint = hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()
        organization = request.organization
        existing = IdempotencyRecord.objects.for_org(organization).filter(key=key).first()
        if existing is None:
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        organization=organization, key=key, fingerprint=fingerprint
                    )
                    response = handler(self, request, *args, **kwargs)
                    if response.status_code >= 400:
                        transaction.set_rollback(True)
                        return response
                    record.status_code = response.status_code
                    record.body = response.data
                    record.save(update_fields=["status_code", "body"])
                    return response
            except IntegrityError:
                existing = IdempotencyRecord.objects.for_org(organization).get(key=key)
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict()
        replay = Response(existing.body, status=existing.status_code)
        replay["Idempotent-Replayed"] = "true"
        return replay

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


class OrgScopedViewSet(viewsets.GenericViewSet):
    """Every queryset starts from the request's organization: another org's object is a 404. Subclasses name the
    policy action they need (`policy_action`, and `policy_actions` per viewset action where they differ)."""

    permission_classes = [Allowed]
    filterset_class = None
    search_fields: list[str] = []
    ordering_fields = ["created_at"]

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "organization": self.organization}

    @property
    def organization(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return None
        return self.request.organization


# ----------------------------------------------------------------------------------------------- bulk operations

BULK_LIMIT = 1000


def bulk_rows(data, key: str) -> list:
    """The rows of a bulk request: `{key: [...]}` (or a bare list), at most BULK_LIMIT; 400 otherwise."""
    rows = data.get(key) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise exceptions.ValidationError({key: [f'Send a list, as {{"{key}": [...]}}.']})
    if len(rows) > BULK_LIMIT:
        raise exceptions.ValidationError({key: [f"At most {BULK_LIMIT:,} rows per request."]})
    return rows


def row_id(row) -> str:
    """The `id` a bulk row names, checked (a 400 for the row when it is missing or not an id)."""
    if not isinstance(row, dict):
        raise exceptions.ValidationError({"non_field_errors": ["Expected an object."]})
    try:
        return str(uuid.UUID(str(row["id"])))
    except KeyError:
        raise exceptions.ValidationError({"id": ["This field is required."]}) from None
    except (TypeError, ValueError, AttributeError):
        raise exceptions.ValidationError({"id": ["Must be a valid UUID."]}) from None


def bulk_results(rows: list, handle) -> dict:
    """Run `handle(row)` for each row in a savepoint of its own, so one row's failure never loses the others.
    `handle` returns (status, {fields of the row's result}); a refusal becomes the row's status and error body,
    as the single-item endpoint would answer it. Returns {"results": [...], "succeeded": n, "failed": n}."""
    results = []
    for index, row in enumerate(rows):
        result = {"index": index}
        if isinstance(row, dict) and isinstance(row.get("id"), str):
            result["id"] = row["id"]
        try:
            with transaction.atomic():
                status_code, body = handle(row)
            result.update(status=status_code, **body)
        except exceptions.ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            result.update(status=400, errors=detail, code=Invalid.default_code)
        except DomainError as exc:
            result.update(status=exc.status, **error_body(exc))
        except (Http404, exceptions.NotFound):
            result.update(status=404, detail="No such object in this organization.", code="not_found")
        results.append(result)
    failed = sum(result["status"] >= 400 for result in results)
    return {"results": results, "succeeded": len(results) - failed, "failed": failed}


def bulk_result_schema(name: str, **fields):
    """The OpenAPI shape of a bulk answer, with the fields a successful row adds."""
    return inline_serializer(name, {
        "results": inline_serializer(f"{name}Row", {
            "index": serializers.IntegerField(), "id": serializers.CharField(required=False),
            "status": serializers.IntegerField(help_text="The HTTP status the single-item endpoint would answer."),
            "errors": serializers.DictField(required=False), "detail": serializers.CharField(required=False),
            "code": serializers.CharField(required=False), **fields,
        }, many=True),
        "succeeded": serializers.IntegerField(), "failed": serializers.IntegerField(),
    })
