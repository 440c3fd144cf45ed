"""Privacy requests about one lead: export everything held about it, and erase the personal parts.

`leads` owns the lead but knows nothing of the apps built on it, so each app registers (in AppConfig.ready())
an exporter, `(organization_id, lead_id) -> JSON-safe data`, and an eraser, `(organization_id, lead_id) -> None`,
which removes that app's personal data about the lead and keeps what reports count. Erasers run inside the
erasing transaction, in registration order; one that fails rolls the whole erasure back.
"""

from collections.abc import Callable

from .audit import json_safe

_exporters: dict[str, Callable] = {}
_erasers: dict[str, Callable] = {}


def register(name: str, *, exporter: Callable | None = None, eraser: Callable | None = None) -> None:
    if exporter is not None:
        _exporters[name] = exporter
    if eraser is not None:
        _erasers[name] = eraser


def export(*, organization_id, lead_id) -> dict:
    return {name: json_safe(exporter(organization_id, lead_id)) for name, exporter in _exporters.items()}


def erase(*, organization_id, lead_id) -> list[str]:
    """Run every eraser; returns the names of the parts erased."""
    for eraser in _erasers.values():
        eraser(organization_id, lead_id)
    return list(_erasers)
