"""Set-based INSERT … SELECT statements that cover every column of a model (imports, recorded history).

A column the statement does not fill gets the model's Python-side default (the database has none) as a typed
parameter, so columns added later are filled without touching the SQL that uses these helpers."""

from django.db import connection


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def default_sql(model, field, params: dict) -> str:
    if field.has_default():
        key = f"default_{model._meta.model_name}_{field.column}"
        params[key] = field.get_db_prep_save(field.get_default(), connection)
        return f"%({key})s::{field.db_type(connection)}"
    if field.null:
        return "NULL"
    raise RuntimeError(f"{model.__name__}.{field.name} is NOT NULL without a default: the import must set it")


def insert_sql(model, given: dict[str, str], params: dict) -> tuple[str, str]:
    """(column list, select list) covering every concrete column of `model`; `given` maps columns to SQL."""
    columns, exprs = [], []
    for field in model._meta.concrete_fields:
        if field.generated:
            continue
        columns.append(quote(field.column))
        exprs.append(given[field.column] if field.column in given else default_sql(model, field, params))
    return ", ".join(columns), ", ".join(exprs)
