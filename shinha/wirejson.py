"""A large model's JSON in slices, byte for byte what `model_dump_json()` gives.

A scheduler part of 100,000 services is about 110 MB of JSON, and pydantic serializes it in one
call that holds the GIL for a second: run in a worker thread, that call still stops the event
loop (no heartbeat, no ping) for as long. Serialized a slice of a list at a time, the worker
gives the GIL back between two slices (every `sys.getswitchinterval()`, 5 ms), and the loop
runs. A test checks that the slices join into exactly `model_dump_json()`, so a part hashed in
slices keeps the hash it had when it was hashed whole.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

#: Items of a list serialized per call: a few milliseconds of work for a service.
SLICE = 500


def json_bytes(model: BaseModel) -> bytes:
    """`model.model_dump_json().encode()`, built in slices (call it in a worker thread)."""
    return b"".join(json_slices(model))


def json_slices(model: BaseModel) -> Iterator[bytes]:
    """Pieces whose concatenation is `model.model_dump_json().encode()`; a nested model is
    sliced too, a list longer than SLICE is serialized SLICE items at a time."""
    cls = type(model)
    if not _sliceable(cls):
        yield model.model_dump_json().encode()  # not a shape sliced here: whole
        return
    yield b"{"
    for i, name in enumerate(cls.model_fields):
        key = json.dumps(name).encode()
        yield (b"," if i else b"") + key + b":"
        value = getattr(model, name)
        if isinstance(value, BaseModel) and type(value) in _model_types(cls, name):
            yield from json_slices(value)
        elif isinstance(value, list) and len(value) > SLICE:
            adapter = _adapter(cls, name)
            yield b"["
            for start in range(0, len(value), SLICE):
                piece = adapter.dump_json(value[start:start + SLICE])
                yield (b"," if start else b"") + piece[1:-1]
            yield b"]"
        else:
            whole = model.model_dump_json(include={name}).encode()
            yield whole[len(key) + 2:-1]  # {"name":VALUE} -> VALUE
    yield b"}"


@cache
def _sliceable(cls: type[BaseModel]) -> bool:
    """Whether the model's JSON is its fields, each under its name, in order: no computed
    field, no alias, no field left out of the JSON (exclude, exclude_if)."""
    return not (cls.model_computed_fields or cls.model_config.get("serialize_by_alias")
                or any(f.exclude or f.exclude_if is not None
                       for f in cls.model_fields.values()))


@cache
def _adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(cls.model_fields[name].annotation or Any)


@cache
def _model_types(cls: type[BaseModel], name: str) -> frozenset[type]:
    """The model classes a field declares (itself, or the members of its union): a value of
    exactly one of them serializes as its own fields, which the slicing reproduces."""
    annotation = cls.model_fields[name].annotation
    members = (typing.get_args(annotation)
               if typing.get_origin(annotation) in (typing.Union, types.UnionType)
               else (annotation,))
    return frozenset(m for m in members if isinstance(m, type) and issubclass(m, BaseModel))
