"""The task-authoring API: ``PipelineTask`` with ``Input`` and ``Output`` connections.

A task declares, as class attributes, the datasets it reads and writes and the dimensions of
one unit of work; the builder uses these declarations to plan quanta, and the executor uses them
to fetch inputs and store the dict ``run`` returns.  Authors never see butlers or files.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ._config import TaskConfig
from ._exceptions import PipelineError


@dataclass(frozen=True, slots=True)
class _Connection:
    dataset_type: str
    storage_class: str
    dimensions: tuple[str, ...]
    multiple: bool = False
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Input(_Connection):
    """A dataset the task reads.

    ``multiple=True`` hands ``run`` a list: every dataset of this type whose data ID matches the
    quantum's, used to gather over a dimension the task does not have (all detectors of an
    exposure, say).
    """


@dataclass(frozen=True, slots=True)
class Output(_Connection):
    """A dataset the task writes; its dimensions must be a subset of the task's."""


#: Keyword ``run`` may declare to receive the quantum's data ID; so no connection may use the name.
DATA_ID_ARGUMENT = "data_id"


class PipelineTask:
    """Base class for tasks.  Subclasses set ``dimensions``, connections and ``run``.

    ``run`` receives one keyword argument per input connection (plus ``data_id``, the quantum's
    :class:`~butler.DataCoordinate`, if it declares that parameter) and returns a dict mapping
    output connection names to the objects to store.
    """

    class Config(TaskConfig):
        """A task with nothing to configure; subclass it to declare fields."""

    dimensions: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[dict[str, Input]] = {}
    outputs: ClassVar[dict[str, Output]] = {}
    wants_data_id: ClassVar[bool] = False
    """Whether ``run`` declares a ``data_id`` parameter (worked out when the class is defined)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inputs: dict[str, Input] = {}
        outputs: dict[str, Output] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Input):
                    inputs[name] = value
                elif isinstance(value, Output):
                    outputs[name] = value
        if DATA_ID_ARGUMENT in inputs or DATA_ID_ARGUMENT in outputs:
            raise PipelineError(
                f"{cls.__module__}.{cls.__qualname__}: a connection may not be named "
                f"{DATA_ID_ARGUMENT!r}; run() receives the quantum's data ID under that name"
            )
        cls.inputs = inputs
        cls.outputs = outputs
        try:
            params = inspect.signature(cls.run).parameters
        except (TypeError, ValueError):  # a run we cannot introspect: pass inputs only
            params = {}  # type: ignore[assignment]
        cls.wants_data_id = DATA_ID_ARGUMENT in params
        if isinstance(cls.dimensions, str):
            cls.dimensions = tuple(d.strip() for d in cls.dimensions.split(",") if d.strip())
        else:
            cls.dimensions = tuple(cls.dimensions)

    def __init__(self, config: TaskConfig | Mapping[str, Any] | None = None) -> None:
        if config is None:
            config = self.Config()
        elif isinstance(config, Mapping):
            config = self.Config.from_overrides(config)
        elif not isinstance(config, self.Config):
            raise PipelineError(
                f"{type(self).__qualname__} needs a {self.Config.__qualname__}, got {config!r}"
            )
        self.config: Any = config

    def run(self, *args: Any, **inputs: Any) -> Mapping[str, Any]:
        """Do the work of one quantum.  Subclasses override with named parameters.

        The executor calls it with keyword arguments only, one per input connection.
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not implement run()")

    @classmethod
    def connection_dataset_type(cls, name: str, config: TaskConfig) -> str:
        """The dataset type name of connection ``name`` after the config's renames."""
        conn = cls.inputs.get(name) or cls.outputs[name]
        return config.connections.get(name, conn.dataset_type)
