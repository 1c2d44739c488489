"""Reading submit YAML files and merging them, remembering which file set every key.

A campaign config is a stack of files: the shipped defaults at the bottom, then the files named by
``includeConfigs`` (each with its own includes beneath it), then the operator's submit YAML, then
command-line overrides on top.  Mappings merge key by key; anything else (scalars, lists) is
replaced whole by the higher layer.  Every key path keeps the name of the file that set it, so an
error three includes deep still tells the operator which file to edit.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .._exceptions import BpsConfigError

KeyPath = tuple[str | int, ...]

#: Source label used for values given on the command line.
COMMAND_LINE = "the command line"
#: Source label used for the shipped defaults (the packaged ``bps/configs/defaults.yaml``).
DEFAULTS = "bps defaults (bps/configs/defaults.yaml)"

_ENV_ONLY_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def format_path(path: KeyPath) -> str:
    """``("payload", "inCollection", 0)`` -> ``payload.inCollection[0]``: how errors name a key."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "<top level>"


@dataclass(slots=True)
class MergedTree:
    """The merged key tree plus where each key came from.

    ``base_dirs`` maps a source label to the directory relative paths set there resolve against.
    """

    data: dict[str, Any] = field(default_factory=dict)
    sources: dict[KeyPath, str] = field(default_factory=dict)
    base_dirs: dict[str, Path] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    """Every file that was merged, bottom layer first (defaults excluded)."""

    def source_of(self, path: KeyPath) -> str:
        """The file (or "the command line") that set ``path`` or its nearest enclosing key."""
        for end in range(len(path), 0, -1):
            src = self.sources.get(path[:end])
            if src is not None:
                return src
        return DEFAULTS

    def base_dir_of(self, path: KeyPath) -> Path:
        return self.base_dirs.get(self.source_of(path), Path.cwd())


#: Largest submit YAML (or include) read; a campaign config is kilobytes, never megabytes.
MAX_CONFIG_BYTES = 10 * 1024 * 1024
#: Deepest nesting of mappings and lists in one file (after alias expansion).
MAX_NESTING_DEPTH = 64
#: Most values one file may expand to once YAML aliases are followed (alias bombs stop here).
MAX_EXPANDED_NODES = 100_000


def read_yaml_mapping(path: Path, source: str | None = None) -> dict[str, Any]:
    """Read one YAML file with a safe loader; it must hold a mapping with string keys.

    Only regular files up to :data:`MAX_CONFIG_BYTES` are read, so ``/dev/zero``, a FIFO or a
    runaway generated file is an error, not a hang.
    """
    label = source or str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BpsConfigError(f"config file not found: {path}") from None
    except OSError as err:
        raise BpsConfigError(f"cannot read config file {path}: {err.strerror}") from err
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise BpsConfigError(f"config file {path} is not a regular file (it is {kind})")
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise BpsConfigError(f"cannot read config file {path}: {err.strerror}") from err
    if len(raw) > MAX_CONFIG_BYTES:
        raise BpsConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise BpsConfigError(
            f"{label}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}, line {line})"
        ) from None
    return parse_yaml_mapping(text, label)


def _check_duplicate_keys(node: yaml.Node | None, label: str) -> None:
    """Refuse two equal keys in one mapping.

    Plain YAML keeps the last of them; in a submit file that silently drops half of a
    ``payload:`` section, so it is an error here.  Works on the composed node tree (no objects
    are constructed), before any object is built.
    """
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    mark = key_node.start_mark
                    raise BpsConfigError(
                        f"{label}: invalid YAML at line {mark.line + 1}, column {mark.column + 1}: "
                        f"duplicate key {key_node.value!r}"
                    )
                seen.add(key_node.value)
            _check_duplicate_keys(value_node, label)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, label)


def _check_event_shape(text: str, label: str) -> None:
    """Refuse deep nesting before anything recursive (PyYAML's composer, our walkers) sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                mark = event.start_mark
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
                raise BpsConfigError(
                    f"{label}: mappings and lists are nested deeper than {MAX_NESTING_DEPTH} levels{where}"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(root: yaml.Node, label: str) -> None:
    """Bound what aliases expand to: the node count and depth as if every alias were copied.

    Computed bottom-up over the node graph with one entry per distinct node, so the check costs
    the size of the file, not the size of the expansion it guards against.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        size[key] = 1 + sum(size.get(id(c), 0) for c in children)
        depth[key] = 1 + max((depth.get(id(c), 0) for c in children), default=0)
        if size[key] > MAX_EXPANDED_NODES:
            raise BpsConfigError(f"{label}: YAML aliases expand to more than {MAX_EXPANDED_NODES} values")
        if depth[key] > MAX_NESTING_DEPTH + 1:
            raise BpsConfigError(
                f"{label}: mappings and lists are nested deeper than {MAX_NESTING_DEPTH} levels "
                "once YAML aliases are expanded"
            )


def parse_yaml_mapping(text: str, label: str) -> dict[str, Any]:
    """Parse YAML text that must be a mapping (an empty document counts as an empty mapping).

    The text is checked in three bounded passes before any Python object is built: nesting depth
    (on the event stream), then alias expansion and duplicate keys (on the node graph).
    """
    loader = yaml.SafeLoader(text)
    try:
        _check_event_shape(text, label)
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_expansion(node, label)
        _check_duplicate_keys(node, label)
        data = loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise BpsConfigError(f"{label}: invalid YAML{where}: {problem}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BpsConfigError(f"{label}: the top level must be a mapping of keys, not a {type(data).__name__}")
    _check_keys(data, (), label)
    return data


def _check_keys(value: Any, path: KeyPath, label: str) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            if not isinstance(key, str):
                raise BpsConfigError(
                    f"{format_path(path)}: key {key!r} must be a string (in {label}); quote it in the YAML"
                )
            _check_keys(sub, (*path, key), label)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _check_keys(sub, (*path, i), label)


def default_layer() -> dict[str, Any]:
    """The shipped defaults, read from package data so an installed wheel finds them too."""
    text = resources.files("bps").joinpath("configs/defaults.yaml").read_text(encoding="utf-8")
    return parse_yaml_mapping(text, DEFAULTS)


def merge_layer(tree: MergedTree, layer: Mapping[str, Any], source: str, base_dir: Path) -> None:
    """Merge ``layer`` over ``tree``: mappings key by key, everything else replaced whole."""
    tree.base_dirs[source] = base_dir
    _merge_into(tree.data, layer, (), source, tree.sources)


def _merge_into(
    base: dict[str, Any], over: Mapping[str, Any], path: KeyPath, source: str, sources: dict[KeyPath, str]
) -> None:
    for key, value in over.items():
        sub = (*path, key)
        current = base.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            sources[sub] = source
            _merge_into(current, value, sub, source, sources)
        else:
            base[key] = _plain_copy(value)
            _record(value, sub, source, sources)


def _plain_copy(value: Any) -> Any:
    """Copy YAML data (dicts, lists, scalars) so later merges never alias a lower layer."""
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    return value


def _record(value: Any, path: KeyPath, source: str, sources: dict[KeyPath, str]) -> None:
    sources[path] = source
    if isinstance(value, dict):
        for key, sub in value.items():
            _record(sub, (*path, key), source, sources)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _record(sub, (*path, i), source, sources)


def load_tree(
    submit_yaml: Path, overrides: Mapping[str, Any] | None, environ: Mapping[str, str]
) -> MergedTree:
    """Stack defaults, includes, the submit YAML and command-line overrides into one tree."""
    tree = MergedTree()
    merge_layer(tree, default_layer(), DEFAULTS, Path.cwd())
    _merge_file_with_includes(tree, submit_yaml.resolve(), environ, stack=(), merged=set())
    if overrides:
        _check_keys(dict(overrides), (), COMMAND_LINE)
        merge_layer(tree, overrides, COMMAND_LINE, Path.cwd())
    tree.data.pop("includeConfigs", None)
    return tree


def _merge_file_with_includes(
    tree: MergedTree,
    path: Path,
    environ: Mapping[str, str],
    stack: tuple[Path, ...],
    merged: set[Path],
    key: str = "",
) -> None:
    """Merge ``path`` over its own includes, each file once.

    A file reached again through another include (a diamond) is not merged a second time: it
    already sits below every file that includes it, and re-reading it would make a chain of
    diamonds cost 2**depth loads.  ``key`` names the ``includeConfigs`` entry that led here.
    """
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise BpsConfigError(f"includeConfigs cycle: {chain}")
    if path in merged:
        return
    try:
        data = read_yaml_mapping(path)
    except BpsConfigError as err:
        if not key:
            raise
        raise BpsConfigError(f"{key}: {err} (in {stack[-1]})") from None
    includes = data.pop("includeConfigs", None)
    for i, include in enumerate(_include_paths(includes, path, environ)):
        _merge_file_with_includes(tree, include, environ, (*stack, path), merged, f"includeConfigs[{i}]")
    merge_layer(tree, data, str(path), path.parent)
    tree.files.append(path)
    merged.add(path)


def _include_paths(value: Any, owner: Path, environ: Mapping[str, str]) -> list[Path]:
    """``includeConfigs`` entries as absolute paths: ``${ENV}`` expanded, relative to ``owner``'s folder.

    Only environment variables are allowed here: ``{placeholders}`` need the merged tree, which
    does not exist until the includes are read.
    """
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BpsConfigError(f"includeConfigs: expected a list of file paths (in {owner})")
    out = []
    for i, raw in enumerate(value):

        def env(match: re.Match[str], i: int = i) -> str:
            name = match.group(1)
            if name not in environ:
                raise BpsConfigError(
                    f"includeConfigs[{i}]: environment variable {name} is not set (in {owner})"
                )
            return environ[name]

        text = _ENV_ONLY_RE.sub(env, raw)
        if "{" in text:
            raise BpsConfigError(
                f"includeConfigs[{i}]: {raw!r} uses a {{placeholder}}; only ${{ENV}} variables can be "
                f"used in includeConfigs (in {owner})"
            )
        p = Path(os.path.expanduser(text))
        out.append((p if p.is_absolute() else owner.parent / p).resolve())
    return out
