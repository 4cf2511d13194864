"""The JSON Schema (OpenAPI 3.0) of the admin API's models (`apischema.py`): generated from
the same dataclasses the handlers parse with and the TypedDicts they answer with, so the
published document and the validation cannot drift apart."""

# no `from __future__ import annotations`: the models' hints are evaluated at run time
import dataclasses
import types
import typing
from typing import Any, Literal, NotRequired, Union

from failover import apischema as m


def _from_keyword(model: Any) -> dict[str, Any] | None:
    """Models with a `from` field, a Python keyword no class body can declare."""
    with_from = (m.DrillStatus, m.DrillReport, m.DrillStopResult)
    return {"from": {"type": "string"}} if model in with_from else None


def schema(kind: Any, refs: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.0 schema of a type; dataclasses and TypedDicts go to `refs` by name."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return {}
    if origin in (Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        inner = (
            schema(real[0], refs) if len(real) == 1 else {"anyOf": [schema(a, refs) for a in real]}
        )
        if type(None) in args:
            if "$ref" in inner:
                return {"allOf": [inner], "nullable": True}
            return {**inner, "nullable": True}
        return inner
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin is list:
        return {"type": "array", "items": schema(args[0], refs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema(args[1], refs)}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if kind in simple:
        return {"type": simple[kind]}
    if kind is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(kind) or typing.is_typeddict(kind):
        name = kind.__name__
        if name not in refs:
            refs[name] = {}  # recursion guard
            refs[name] = _object(kind, refs)
        return {"$ref": f"#/components/schemas/{name}"}
    raise TypeError(f"no schema for {kind!r}")


def _object(model: Any, refs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(model)
    properties: dict[str, Any] = {}
    required: list[str] = []
    if dataclasses.is_dataclass(model):
        for f in dataclasses.fields(model):
            prop = schema(hints[f.name], refs)
            if f.default is not dataclasses.MISSING and f.default is not None:
                prop = {**prop, "default": f.default}
            if f.name in m.FIELD_DOCS:
                prop = {**prop, "description": m.FIELD_DOCS[f.name]}
            properties[f.name] = prop
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        closed = True
    else:
        for name, hint in hints.items():
            properties[name] = schema(_strip_not_required(hint), refs)
        required = sorted(model.__required_keys__)
        closed = False
    extra = _from_keyword(model)
    if extra:
        properties.update(extra)
        required.append("from")
    body: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        body["required"] = sorted(required)
    if closed:
        body["additionalProperties"] = False
    doc = (model.__doc__ or "").strip()
    if doc and not doc.startswith(model.__name__ + "("):  # not the dataclass signature
        body["description"] = " ".join(doc.split())
    return body


def _strip_not_required(hint: Any) -> Any:
    if typing.get_origin(hint) is NotRequired:
        return typing.get_args(hint)[0]
    return hint
