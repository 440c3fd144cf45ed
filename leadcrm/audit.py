"""The audit log: who changed an organization's configuration, when, and from what to what.

Services that change audited objects call `record()` inside their transaction, so an entry exists exactly when
the change does. The pattern:

    before = audit.stored(rule)            # the row as it is in the database (None when new)
    ...save...
    audit.record(organization=org, actor=actor, action=AuditAction.UPDATED, obj=rule,
                 before=before, after=audit.snapshot(rule))

For a delete, take `ref = audit.ref(obj)` and `before = audit.snapshot(obj)` first (a deleted instance has no
pk), then `record(..., obj=ref, before=before)`. `actor` is a user, an API key, or None for the system;
`actor_of(request)` picks the one a request acts as. Django admin pages that save without a service use
`leadcrm.admin.AuditedAdminMixin`.

Apps describe their models with `register()` (in AppConfig.ready()): fields to leave out, secret fields
(recorded only as "changed", never their value), related parts to include (a team's members, a sequence's
steps), and how to name the object.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from .models import ApiKey, AuditAction, AuditEntry

SECRET_MARK = "changed"
# Bookkeeping every model has; not a change anyone made.
ALWAYS_EXCLUDED = frozenset({"organization", "created_at", "updated_at", "created", "last_used_at", "sync_xid"})


@dataclass(frozen=True)
class Spec:
    exclude: frozenset = frozenset()
    secret: frozenset = frozenset()
    related: dict[str, Callable] = field(default_factory=dict)
    object_id: Callable | None = None
    label: Callable | None = None
    type_label: str = ""


@dataclass(frozen=True)
class Ref:
    """An audited object's identity, taken before it is deleted."""

    object_type: str
    object_id: str
    label: str


_specs: dict[type, Spec] = {}


def register(model, *, exclude=(), secret=(), related=None, object_id=None, label=None) -> None:
    _specs[model] = Spec(exclude=frozenset(exclude), secret=frozenset(secret), related=dict(related or {}),
                         object_id=object_id, label=label)


def registered_types() -> list[tuple[str, str]]:
    """(object_type, readable name) of every registered model, for filters."""
    return sorted(((m._meta.label_lower, str(m._meta.verbose_name).capitalize()) for m in _specs),
                  key=lambda pair: pair[1])


def type_name(object_type: str) -> str:
    for model in _specs:
        if model._meta.label_lower == object_type:
            return str(model._meta.verbose_name).capitalize()
    return object_type


def _spec(model) -> Spec:
    return _specs.get(model) or Spec()


def json_safe(value):
    """Decimals, dates, UUIDs… as the API would write them."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _field_value(obj, model_field):
    if isinstance(model_field, models.ForeignKey):
        related_id = getattr(obj, model_field.attname)
        if related_id is None:
            return None
        related = getattr(obj, model_field.name, None)  # one query per foreign key; changes here are rare
        return str(related) if related is not None else str(related_id)
    return getattr(obj, model_field.attname)


def snapshot(obj) -> dict:
    """The object's audited fields as JSON-safe values (secret ones raw: only `diff` output is stored)."""
    spec = _spec(type(obj))
    data = {}
    for model_field in obj._meta.concrete_fields:
        name = model_field.name
        if model_field.primary_key or name in ALWAYS_EXCLUDED or name in spec.exclude:
            continue
        data[name] = _field_value(obj, model_field)
    if obj.pk is not None:
        for name, part in spec.related.items():
            data[name] = part(obj)
    return json_safe(data)


def stored(obj) -> dict | None:
    """A snapshot of the row as the database holds it now (the instance may already carry new values)."""
    if obj.pk is None:
        return None
    current = type(obj)._base_manager.filter(pk=obj.pk).first()
    return snapshot(current) if current is not None else None


def ref(obj) -> Ref:
    spec = _spec(type(obj))
    object_id = spec.object_id(obj) if spec.object_id else obj.pk
    label = spec.label(obj) if spec.label else str(obj)
    return Ref(object_type=obj._meta.label_lower, object_id=str(object_id), label=label[:300])


def diff(before: dict | None, after: dict | None, *, secret=frozenset()) -> dict:
    """{field: [before, after]} for fields that differ; a secret field as "changed"."""
    before, after = before or {}, after or {}
    changes = {}
    for name in dict.fromkeys([*before, *after]):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        changes[name] = SECRET_MARK if name in secret else [old, new]
    return changes


def actor_of(request):
    """The API key a request authenticated with, else its signed-in user, else None."""
    api_key = getattr(request, "api_key", None)
    if isinstance(api_key, ApiKey):
        return api_key
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def user_of(actor):
    """The user behind an actor (None for an API key or the system)."""
    return None if actor is None or isinstance(actor, ApiKey) else actor


def actor_fields(actor) -> dict:
    """The columns that name who did a recorded change (an activity, an assignment): the user, or — a key being
    no user — the key by name (`actor` may also be that name already, as events carry it)."""
    if isinstance(actor, ApiKey):
        return {"actor": None, "actor_label": actor_label(actor)}
    if isinstance(actor, str):
        return {"actor": None, "actor_label": actor}
    return {"actor": actor, "actor_label": ""}


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, ApiKey):
        return f"API key {actor.name}"
    return actor.email or actor.get_username()


def record(*, organization, actor, action: str, obj, before: dict | None = None, after: dict | None = None,
           changes: dict | None = None) -> AuditEntry | None:
    """Write one entry, in the caller's transaction. An update that changed nothing writes none."""
    target = obj if isinstance(obj, Ref) else ref(obj)
    if changes is None:
        model = None if isinstance(obj, Ref) else type(obj)
        secret = _spec(model).secret if model else next(
            (s.secret for m, s in _specs.items() if m._meta.label_lower == target.object_type), frozenset())
        changes = diff(before, after, secret=secret)
    if action == AuditAction.UPDATED and not changes:
        return None
    return AuditEntry.objects.create(
        organization_id=getattr(organization, "pk", organization), actor=user_of(actor),
        actor_label=actor_label(actor)[:300], action=action, object_type=target.object_type,
        object_id=target.object_id[:64], object_label=target.label, changes=json_safe(changes),
    )


def record_save(*, organization, actor, obj, before: dict | None) -> AuditEntry | None:
    """Created (no `before`) or updated, comparing `before` with the object as it is now."""
    action = AuditAction.CREATED if before is None else AuditAction.UPDATED
    return record(organization=organization, actor=actor, action=action, obj=obj, before=before,
                  after=snapshot(obj))


class Deletion:
    """`with audit.Deletion(obj, organization=…, actor=…): obj.delete()` records what was deleted."""

    def __init__(self, obj, *, organization, actor):
        self.ref, self.before = ref(obj), snapshot(obj)
        self.organization, self.actor = organization, actor

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            record(organization=self.organization, actor=self.actor, action=AuditAction.DELETED, obj=self.ref,
                   before=self.before)
        return False


def _membership_label(membership) -> str:
    return f"{membership.user.email or membership.user.get_username()} ({membership.get_role_display()})"


def _register_own_models():
    from .models import Membership, Organization

    # The key's pk embeds its hash: the prefix names it.
    register(ApiKey, exclude={"id", "created_by"}, secret={"hashed_key"}, object_id=lambda key: key.prefix,
             label=lambda key: f"{key.name} ({key.prefix})")
    register(Membership, label=_membership_label)
    register(Organization, exclude={"slug"})


_register_own_models()
