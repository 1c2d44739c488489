"""The dimension universe: the named axes (instrument, exposure, detector, ...) that data IDs use.

The universe is data (a YAML document, see ``configs/dimensions.yaml``) turned into immutable
:class:`Dimension` objects once.  A repository stores the document it was created with, so the
universe of an existing repository never changes underneath it.

Terminology:

* *required* dimensions of a dimension are those whose keys form part of its identity
  (``detector`` requires ``instrument``); a data ID always carries the required closure.
* *implied* dimensions are fixed by a record (an ``exposure`` record names its ``physical_filter``);
  they are looked up from records, never needed to identify anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import DimensionRecordError, InvalidDataIdError, UnknownDimensionError

#: Python types for the field type names used in the universe YAML.
FIELD_TYPES: dict[str, type] = {"int": int, "float": float, "string": str, "timespan": dict}

DataIdValue = int | str

#: Integer dimension values and integer metadata are stored as signed 64-bit columns (BIGINT).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT64_RANGE = "integers in the registry must fit in 64 bits (-2**63 to 2**63-1)"


@dataclass(frozen=True, slots=True)
class Dimension:
    """One dimension of the universe, with its key, dependencies and metadata fields."""

    name: str
    key_name: str
    key_type: type
    requires: tuple[str, ...]
    implies: tuple[str, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Metadata field name -> type name (``int``, ``float``, ``string``, ``timespan``)."""

    def coerce_key(self, value: Any) -> DataIdValue:
        """Return ``value`` converted to this dimension's key type, or raise InvalidDataIdError."""
        if self.key_type is int:
            if isinstance(value, bool):
                raise InvalidDataIdError(f"{self.name} must be an integer, got {value!r}")
            if isinstance(value, int):
                number = value
            else:
                try:
                    number = int(str(value).strip())
                except ValueError:
                    raise InvalidDataIdError(f"{self.name} must be an integer, got {value!r}") from None
            if not INT64_MIN <= number <= INT64_MAX:
                raise InvalidDataIdError(f"{self.name}={number} is out of range: {INT64_RANGE}")
            return number
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise InvalidDataIdError(f"{self.name} must be a non-empty string, got {value!r}")


class DimensionUniverse:
    """All dimensions known to a repository, in a stable dependency-respecting order."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config: dict[str, Any] = dict(config)
        self.version: int = int(config.get("version", 1))
        self.namespace: str = str(config.get("namespace", "skybatch"))
        dims: dict[str, Dimension] = {}
        raw = config.get("dimensions")
        if not isinstance(raw, Mapping) or not raw:
            raise DimensionRecordError("dimension universe config has no 'dimensions' mapping")
        for name, spec in raw.items():
            key = spec.get("key") or {}
            key_type_name = key.get("type", "string")
            if key_type_name not in ("int", "string"):
                raise DimensionRecordError(f"dimension {name}: key type must be int or string")
            dims[name] = Dimension(
                name=name,
                key_name=str(key.get("name", "name" if key_type_name == "string" else "id")),
                key_type=FIELD_TYPES[key_type_name],
                requires=tuple(spec.get("requires") or ()),
                implies=tuple(spec.get("implies") or ()),
                metadata=dict(spec.get("metadata") or {}),
            )
        for dim in dims.values():
            for other in dim.requires + dim.implies:
                if other not in dims:
                    raise DimensionRecordError(f"dimension {dim.name} depends on unknown dimension {other}")
            for mname, mtype in dim.metadata.items():
                if mtype not in FIELD_TYPES:
                    raise DimensionRecordError(
                        f"dimension {dim.name}: field {mname} has unknown type {mtype}"
                    )
        self._dimensions = self._sorted(dims)
        self._order = {name: i for i, name in enumerate(self._dimensions)}
        self._required_cache: dict[frozenset[str], tuple[str, ...]] = {}

    @staticmethod
    def _sorted(dims: dict[str, Dimension]) -> dict[str, Dimension]:
        """Order dimensions so each comes after everything it requires or implies."""
        ordered: dict[str, Dimension] = {}

        def visit(name: str, stack: tuple[str, ...]) -> None:
            if name in ordered:
                return
            if name in stack:
                raise DimensionRecordError(f"dimension dependency cycle: {' -> '.join(stack + (name,))}")
            for dep in dims[name].requires + dims[name].implies:
                visit(dep, stack + (name,))
            ordered[name] = dims[name]

        for name in dims:
            visit(name, ())
        return ordered

    @classmethod
    def default(cls) -> DimensionUniverse:
        """The universe shipped with skybatch (``butler/configs/dimensions.yaml``)."""
        # Imported here: batch jobs build their universe from the graph and never pay for these.
        from importlib import resources

        import yaml

        text = resources.files("butler").joinpath("configs/dimensions.yaml").read_text()
        return cls(yaml.safe_load(text))

    def __getitem__(self, name: str) -> Dimension:
        try:
            return self._dimensions[name]
        except KeyError:
            raise UnknownDimensionError(
                f"unknown dimension {name!r}; known dimensions: {', '.join(self._dimensions)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._dimensions

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self._dimensions.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._dimensions)

    def sort(self, names: Iterable[str]) -> tuple[str, ...]:
        """Return ``names`` in universe order, checking each is known."""
        for n in names:
            self[n]
        return tuple(sorted(set(names), key=self._order.__getitem__))

    def required_closure(self, names: Iterable[str]) -> tuple[str, ...]:
        """All dimensions needed to identify ``names``: themselves plus what they require, sorted."""
        key = frozenset(names)
        cached = self._required_cache.get(key)
        if cached is not None:
            return cached
        out: set[str] = set()

        def add(name: str) -> None:
            if name not in out:
                out.add(name)
                for dep in self[name].requires:
                    add(dep)

        for n in key:
            add(n)
        result = self.sort(out)
        self._required_cache[key] = result
        return result

    def implied_closure(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` plus everything they require or imply, transitively, sorted."""
        out: set[str] = set()

        def add(name: str) -> None:
            if name not in out:
                out.add(name)
                dim = self[name]
                for dep in dim.requires + dim.implies:
                    add(dep)

        for n in names:
            add(n)
        return self.sort(out)

    def data_id(
        self, dimensions: Iterable[str], values: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> DataCoordinate:
        """Build a validated :class:`DataCoordinate` for ``dimensions`` from a mapping and/or kwargs.

        Extra keys that are dimensions outside ``dimensions`` are ignored (a caller may pass a
        fuller data ID); keys that are not dimensions at all are an error.
        """
        required = self.required_closure(dimensions)
        merged: dict[str, Any] = {}
        if values:
            merged.update(values)
        merged.update(kwargs)
        for k in merged:
            if k not in self._dimensions:
                raise InvalidDataIdError(
                    f"data ID key {k!r} is not a dimension; known dimensions: {', '.join(self._dimensions)}"
                )
        missing = [d for d in required if d not in merged]
        if missing:
            raise InvalidDataIdError(
                f"data ID {dict(merged)} lacks {', '.join(missing)} (needed: {', '.join(required)})"
            )
        return DataCoordinate(required, tuple(self[d].coerce_key(merged[d]) for d in required))


class DataCoordinate(Mapping[str, DataIdValue]):
    """An immutable, hashable data ID: values for a sorted tuple of required dimensions.

    Equality and hashing use the dimension names and values, so data IDs work as dict keys when
    grouping quanta.  Build one with :meth:`DimensionUniverse.data_id`, which validates.
    """

    __slots__ = ("dimensions", "values_tuple", "_hash")

    def __init__(self, dimensions: tuple[str, ...], values: tuple[DataIdValue, ...]) -> None:
        self.dimensions = dimensions
        self.values_tuple = values
        self._hash = hash((dimensions, values))

    def __getitem__(self, key: str) -> DataIdValue:
        try:
            return self.values_tuple[self.dimensions.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DataCoordinate):
            return self.dimensions == other.dimensions and self.values_tuple == other.values_tuple
        if isinstance(other, Mapping):
            return dict(self) == dict(other)
        return NotImplemented

    def subset(self, dimensions: tuple[str, ...]) -> DataCoordinate:
        """The data ID restricted to ``dimensions`` (which must be sorted and present)."""
        return DataCoordinate(dimensions, tuple(self[d] for d in dimensions))

    def __repr__(self) -> str:
        return (
            "{"
            + ", ".join(f"{k}: {v!r}" for k, v in zip(self.dimensions, self.values_tuple, strict=True))
            + "}"
        )

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in zip(self.dimensions, self.values_tuple, strict=True))
