"""``{placeholder}`` and ``${ENV}`` substitution over the merged key tree.

Syntax inside any string value:

- ``{name}``: the value of another key.  ``name`` is looked up first among the value's siblings,
  then in each enclosing mapping out to the top level (so ``{output}`` inside ``payload`` finds
  ``payload.output``), then as a key anywhere else in the tree if exactly one key has that leaf
  name, then as an environment variable.  Built-ins (``timestamp``, ``uniqProcName``) win over keys.
- ``${NAME}`` / ``${NAME:-fallback}``: an environment variable, inserted literally.
- ``{{``, ``}}`` and ``$$``: literal ``{``, ``}`` and ``$``.  A brace not around a valid name is
  kept as written.

Referenced values are themselves resolved (recursively, memoised); a reference cycle, an
unresolvable name, an ambiguous name or a reference to a mapping/list is an error naming the key
path and file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .._exceptions import BpsConfigError
from ._layers import KeyPath, MergedTree, format_path

_TOKEN_RE = re.compile(
    r"\$\$"
    r"|\$\{(?P<env>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<fallback>[^}]*))?\}"
    r"|\{\{|\}\}"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<spec>[<>^=+\- #0-9.,_a-zA-Z%]*))?\}"
)
#: Placeholders LSST fills per job, when the workflow is built (or at run time): never keys.
JOB_PLACEHOLDERS = frozenset(
    {
        "qgraphFile",
        "qgraphNodeId",
        "qgraphId",
        "jobName",
        "label",
        "inputQgraphFile",
        "outputQgraphFile",
        "executionButlerDir",
        "wmsAttemptNum",
    }
)
#: Where LSST looks for a job value's ``{name}``, after the job's own section (see ``_find_key``).
_SECTION_ORDER = ("payload", "cluster", "pipetask", "site")
_MISSING = object()
#: Longest string a value may expand to; placeholders that double each other stop here.
MAX_VALUE_CHARS = 1024 * 1024


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class PlaceholderResolver:
    """Resolves every string in a :class:`MergedTree`; one instance per load (it memoises)."""

    def __init__(
        self,
        tree: MergedTree,
        environ: Mapping[str, str],
        builtins: Mapping[str, Callable[[PlaceholderResolver], str]],
        is_lenient: Callable[[KeyPath], bool] = lambda _path: False,
    ) -> None:
        self._tree = tree
        self._environ = environ
        self._builtins = builtins
        self._builtin_cache: dict[str, str] = {}
        self._cache: dict[tuple[KeyPath, bool], Any] = {}
        self._is_lenient = is_lenient
        self._active: list[KeyPath] = []
        self._rendering: list[KeyPath] = []
        self._leaves: dict[str, list[KeyPath]] = {}
        self._index_leaves(tree.data, ())

    def _index_leaves(self, value: Any, path: KeyPath) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                sub_path = (*path, key)
                if not isinstance(sub, dict | list):
                    self._leaves.setdefault(key, []).append(sub_path)
                self._index_leaves(sub, sub_path)
        elif isinstance(value, list):
            for i, sub in enumerate(value):
                self._index_leaves(sub, (*path, i))

    def pin(self, name: str, value: str) -> None:
        """From now on ``{name}`` means ``value`` (a key bps has normalised, e.g. an absolute path)."""
        self._builtin_cache[name] = value
        self._builtins = {**self._builtins, name: lambda _r: value}

    def raw(self, path: KeyPath) -> Any:
        """The unresolved value at ``path``, or a private sentinel if there is none."""
        node: Any = self._tree.data
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    return _MISSING
            elif not isinstance(node, dict) or part not in node:
                return _MISSING
            node = node[part]
        return node

    def has(self, path: KeyPath) -> bool:
        return self.raw(path) is not _MISSING

    def resolved(self, path: KeyPath, lenient: bool = False) -> Any:
        """The value at ``path`` with every string inside it substituted.

        Lenient (asked for, or because ``path`` is one the config marks lenient: command
        templates, free-form variables): job placeholders and unset ``${VAR}`` stay as written.
        """
        lenient = lenient or self._is_lenient(path)
        key = (path, lenient)
        if key in self._cache:
            return self._cache[key]
        raw = self.raw(path)
        if raw is _MISSING:
            raise KeyError(path)
        if path in self._active:
            names = " -> ".join(format_path(p) for p in (*self._active[self._active.index(path) :], path))
            raise BpsConfigError(f"placeholder cycle: {names} (in {self._tree.source_of(path)})")
        self._active.append(path)
        try:
            if isinstance(raw, dict):
                value: Any = {k: self.resolved((*path, k), lenient) for k in raw}
            elif isinstance(raw, list):
                value = [self.resolved((*path, i), lenient) for i in range(len(raw))]
            elif isinstance(raw, str):
                value = self.substitute(raw, path, lenient=lenient)
            else:
                value = raw
        finally:
            self._active.pop()
        self._cache[key] = value
        return value

    def resolve_tree(self) -> dict[str, Any]:
        return {key: self.resolved((key,)) for key in self._tree.data}

    def substitute(
        self, text: str, path: KeyPath, *, context: KeyPath | None = None, lenient: bool = False
    ) -> str:
        """Substitute placeholders and environment variables in ``text``, the value at ``path``.

        ``context`` is the key path whose sections are searched for ``{names}`` (default: ``path``;
        a command template rendered for one job uses that job's section).  ``lenient`` keeps
        :data:`JOB_PLACEHOLDERS` and unset ``${VAR}`` as written, for the job or its environment
        to fill (command templates, free-form variables), as LSST does.
        """
        if "{" not in text and "}" not in text and "$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            if token == "$$":
                return "$$" if lenient else "$"
            if token == "{{":
                return "{"
            if token == "}}":
                return "}"
            env = match.group("env")
            if env is not None:
                if env in self._environ:
                    return self._environ[env]
                fallback = match.group("fallback")
                if fallback is not None:
                    return fallback
                if lenient:
                    return token
                raise BpsConfigError(
                    f"{format_path(path)}: environment variable {env} is not set "
                    f"(in {self._tree.source_of(path)}); set it or write ${{{env}:-fallback}}"
                )
            name = match.group("name")
            if lenient and name in JOB_PLACEHOLDERS:
                return token
            value = self._lookup(name, path, context, lenient)
            spec = match.group("spec")
            if spec:
                value = _formatted(value, spec)
            return value

        result = _TOKEN_RE.sub(replace, text)
        if len(result) > MAX_VALUE_CHARS:
            raise BpsConfigError(
                f"{format_path(path)}: the value expands to more than {MAX_VALUE_CHARS} characters "
                f"(placeholders that repeat each other?) (in {self._tree.source_of(path)})"
            )
        return result

    def render(self, text: str, path: KeyPath, context: KeyPath) -> str:
        """``text`` (a command template) with every ``{name}`` looked up from ``context``.

        Referenced values are themselves rendered in the same context (``{runPreCmdOpts}`` ->
        ``{defaultPreCmdOpts}`` -> its value for this job), as LSST's search does; job
        placeholders and unset ``${VAR}`` are kept for the job to fill.
        """
        return self.substitute(text, path, context=context, lenient=True)

    def _lookup(self, name: str, path: KeyPath, context: KeyPath | None = None, lenient: bool = False) -> str:
        if name in self._builtins:
            if name not in self._builtin_cache:
                self._builtin_cache[name] = self._builtins[name](self)
            return self._builtin_cache[name]
        target = self._find_key(name, path if context is None else context)
        if target is not None:
            if context is not None and isinstance(self.raw(target), str):
                if target in self._rendering:
                    chain = " -> ".join(format_path(p) for p in (*self._rendering, target))
                    raise BpsConfigError(f"placeholder cycle: {chain} (in {self._tree.source_of(target)})")
                self._rendering.append(target)
                try:
                    return self.substitute(self.raw(target), target, context=context, lenient=lenient)
                finally:
                    self._rendering.pop()
            value = self.resolved(target, lenient=lenient)
            if isinstance(value, dict | list):
                kind = "mapping" if isinstance(value, dict) else "list"
                raise BpsConfigError(
                    f"{format_path(path)}: placeholder {{{name}}} refers to {format_path(target)}, "
                    f"which is a {kind}, not a single value "
                    f"(in {self._tree.source_of(path)})"
                )
            if value is None:
                if lenient:
                    return ""
                raise BpsConfigError(
                    f"{format_path(path)}: placeholder {{{name}}} refers to {format_path(target)}, which is "
                    f"empty (null) (in {self._tree.source_of(path)})"
                )
            return _scalar_text(value)
        if name in self._environ:
            return self._environ[name]
        raise BpsConfigError(
            f"{format_path(path)}: unresolved placeholder {{{name}}}: no key {name!r} in the config and no "
            f"environment variable of that name (in {self._tree.source_of(path)})"
        )

    def _find_key(self, name: str, path: KeyPath) -> KeyPath | None:
        """Where ``{name}`` in the value at ``path`` comes from: LSST's search order, then ours.

        1. the job section ``path`` is in: ``finalJob``/``customJob`` (LSST's search object);
        2. ``payload``; ``cluster.<name>`` and ``pipetask.<label>`` when ``path`` is inside one;
           ``site.<computeSite>`` (LSST's BPS_SEARCH_ORDER);
        3. the mappings enclosing ``path``, innermost first (vars, site subsections...);
        4. the top level;
        5. a key of that name anywhere else, if there is exactly one.
        """
        candidates: list[KeyPath] = []
        head = path[0] if path else ""
        if head in ("finalJob", "customJob") and len(path) > 1:
            candidates.append((head, name))
        candidates.append(("payload", name))
        if head in ("cluster", "pipetask") and len(path) > 2:
            candidates.append((head, path[1], name))
        if path != ("computeSite",) and name != "computeSite" and self.has(("computeSite",)):
            site = self.raw(("computeSite",))
            if isinstance(site, str) and "{" not in site and "$" not in site:
                candidates.append(("site", site, name))
        for end in range(len(path) - 1, 0, -1):
            candidates.append((*path[:end], name))
        candidates.append((name,))
        for candidate in candidates:
            if candidate != path and self.has(candidate):
                return candidate
        matches = [p for p in self._leaves.get(name, []) if p != path]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            where = ", ".join(format_path(p) for p in matches)
            raise BpsConfigError(
                f"{format_path(path)}: placeholder {{{name}}} is ambiguous: it could mean any of {where} "
                f"(in {self._tree.source_of(path)}); move the key next to its use or rename one"
            )
        return None


def _formatted(text: str, spec: str) -> str:
    """``{name:spec}``: Python's format spec applied to the value (a number when it looks like one)."""
    value: Any = text
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            pass
    try:
        return format(value, spec)
    except ValueError:
        return format(text, spec)
