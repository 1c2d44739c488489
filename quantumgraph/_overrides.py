"""Command-line changes to a pipeline: ``-c LABEL:KEY=VALUE``, ``-C LABEL:FILE.yaml``, ``--select-tasks``.

They apply to the pipeline as read from its file, before the graph is built, so the graph (and
the ``{label}_config`` datasets written from it) records the configuration that actually ran.
Values are YAML (``-c isr:offset=2.5``, ``-c calibrate:fail_detectors=[1,2]``), read with
``yaml.safe_load`` like every config; files hold a mapping of field -> value.  They go through
:meth:`Pipeline.with_config`, so every field is checked by the task's Config and the pipeline's
contracts are checked again, with the errors a pipeline file would get.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ._exceptions import PipelineError
from ._pipeline import Pipeline


def _split_label(option: str, value: str, pipeline: Pipeline) -> tuple[str, str]:
    label, sep, rest = value.partition(":")
    if not sep or not label or not rest:
        form = "LABEL:KEY=VALUE" if option == "-c" else "LABEL:FILE.yaml"
        raise PipelineError(f"{option} {value!r}: expected {form}")
    if label not in pipeline.tasks:
        labels = ", ".join(pipeline.tasks)
        raise PipelineError(
            f"{option} {value!r}: no task labelled {label!r} in the pipeline (labels: {labels})"
        )
    return label, rest


def _parse_value(option: str, text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise PipelineError(f"{option}: value {text!r} is not valid YAML: {exc}") from None


def apply_config_overrides(
    pipeline: Pipeline, overrides: Iterable[str], files: Iterable[str] = ()
) -> Pipeline:
    """``pipeline`` with ``LABEL:KEY=VALUE`` overrides and ``LABEL:FILE`` override files applied.

    Files apply first, in order, then single values, in order: the last word wins.
    """
    changes: dict[str, dict[str, Any]] = {}
    for value in files:
        label, path = _split_label("-C", value, pipeline)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise PipelineError(f"-C {value!r}: cannot read {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise PipelineError(f"-C {value!r}: {path} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise PipelineError(f"-C {value!r}: {path} must hold a mapping of config field -> value")
        changes.setdefault(label, {}).update({str(k): v for k, v in data.items()})
    for value in overrides:
        label, assignment = _split_label("-c", value, pipeline)
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"-c {value!r}: expected LABEL:KEY=VALUE")
        changes.setdefault(label, {})[key.strip()] = _parse_value("-c", text)
    for label, values in changes.items():
        pipeline = pipeline.with_config(label, values)
    return pipeline


def select_tasks(pipeline: Pipeline, selections: Iterable[str]) -> Pipeline:
    """Only the tasks named (``--select-tasks a,b``; subsets and ``a..b`` ranges too, as after
    ``FILE.yaml#``); the outputs of the tasks left out must then already exist in the inputs."""
    parts = [part.strip() for value in selections for part in value.split(",") if part.strip()]
    if not parts:
        raise PipelineError("--select-tasks: no labels given")
    return pipeline.select(",".join(parts))
