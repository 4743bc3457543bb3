"""Make configuration models from values validated once per distinct value.

A large tree repeats itself: 100,000 services carry a handful of distinct `check_interval`,
`contact_groups` or `check_command` values, and most of their properties come from a few
templates. Validating every object in full with pydantic spends most of a load re-checking
the same strings. `ModelFactory` validates each distinct (property, value) pair once, with
the field's own pydantic validator (same types, same constraints, same coercions), and builds
the instance from the validated values and the field defaults, as `model_construct` does but
without its per-field Python loop.

The builder only takes this path for objects it knows to be plain (every property known, every
value valid); anything else goes through full validation, which reports the errors. A test
checks that both paths give equal models for every object type.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Annotated, Any, Generic, TypeVar

from pydantic import TypeAdapter

from shinha.config.objects import ConfigObject

M = TypeVar("M", bound=ConfigObject)


class ModelFactory(Generic[M]):
    """Validate property values of one model with a cache, and build its instances."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.lists = model.list_properties
        self._adapters: dict[str, TypeAdapter[Any]] = {}
        #: (property, value as written) -> validated value.
        self.cache: dict[tuple[str, str], Any] = {}
        self._defaults: dict[str, Any] = {}
        self._factories: dict[str, Callable[[], Any]] = {}
        self.required: frozenset[str] = frozenset(
            name for name, info in model.model_fields.items() if info.is_required())
        for name, info in model.model_fields.items():
            if info.is_required():
                continue
            if info.default_factory is not None:
                self._factories[name] = info.default_factory  # type: ignore[assignment]
            else:
                self._defaults[name] = info.default

    def value(self, field: str, raw: str) -> Any:
        """The validated value of `field` written as `raw` (lists split on commas); raises
        ValidationError when the field's validator refuses it."""
        key = (field, raw)
        try:
            return self.cache[key]
        except KeyError:
            pass
        adapter = self._adapters.get(field)
        if adapter is None:
            info = self.model.model_fields[field]
            adapter = TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]
            self._adapters[field] = adapter
        data: Any = raw
        if field in self.lists:
            data = [x for x in (p.strip() for p in raw.split(",")) if x]
        value = adapter.validate_python(data)
        self.cache[key] = value
        return value

    def data(self, values: dict[str, Any]) -> dict[str, Any]:
        """The field defaults with `values` (validated) over them: what `make` takes."""
        data = self._defaults.copy()
        data.update(values)
        return data

    def make(self, data: dict[str, Any], fields: frozenset[str]) -> M:
        """An instance from `data` (from `data()`, validated) in which the fields `fields`
        were given (shared by the objects written alike: ConfigObject copies it before a change);
        the fields with a default factory (dicts) get a new default each."""
        for name, factory in self._factories.items():
            if name not in fields:
                data[name] = factory()
        return _instance(self.model, data, fields)


def copy_model(obj: M, **changes: Any) -> M:
    """A shallow copy of `obj` with `changes` (validated): `model_copy(update=…)` in one step,
    for the loader's hot loops."""
    data = obj.__dict__.copy()
    data.update(changes)
    return _instance(type(obj), data, obj.__pydantic_fields_set__.union(changes))


def _instance(cls: type[M], data: dict[str, Any], fields: AbstractSet[str]) -> M:
    """What pydantic's own model_construct sets, in one step per attribute."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", fields)
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj
