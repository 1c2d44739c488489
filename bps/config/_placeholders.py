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
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}"
)
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
    ) -> None:
        self._tree = tree
        self._environ = environ
        self._builtins = builtins
        self._builtin_cache: dict[str, str] = {}
        self._cache: dict[KeyPath, Any] = {}
        self._active: list[KeyPath] = []
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

    def resolved(self, path: KeyPath) -> Any:
        """The value at ``path`` with every string inside it substituted."""
        if path in self._cache:
            return self._cache[path]
        raw = self.raw(path)
        if raw is _MISSING:
            raise KeyError(path)
        if path in self._active:
            names = " -> ".join(format_path(p) for p in (*self._active[self._active.index(path) :], path))
            raise BpsConfigError(f"placeholder cycle: {names} (in {self._tree.source_of(path)})")
        self._active.append(path)
        try:
            if isinstance(raw, dict):
                value: Any = {k: self.resolved((*path, k)) for k in raw}
            elif isinstance(raw, list):
                value = [self.resolved((*path, i)) for i in range(len(raw))]
            elif isinstance(raw, str):
                value = self.substitute(raw, path)
            else:
                value = raw
        finally:
            self._active.pop()
        self._cache[path] = value
        return value

    def resolve_tree(self) -> dict[str, Any]:
        return {key: self.resolved((key,)) for key in self._tree.data}

    def substitute(self, text: str, path: KeyPath) -> str:
        """Substitute placeholders and environment variables in ``text``, the value at ``path``."""
        if "{" not in text and "}" not in text and "$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            if token == "$$":
                return "$"
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
                raise BpsConfigError(
                    f"{format_path(path)}: environment variable {env} is not set "
                    f"(in {self._tree.source_of(path)}); set it or write ${{{env}:-fallback}}"
                )
            return self._lookup(match.group("name"), path)

        result = _TOKEN_RE.sub(replace, text)
        if len(result) > MAX_VALUE_CHARS:
            raise BpsConfigError(
                f"{format_path(path)}: the value expands to more than {MAX_VALUE_CHARS} characters "
                f"(placeholders that repeat each other?) (in {self._tree.source_of(path)})"
            )
        return result

    def _lookup(self, name: str, path: KeyPath) -> str:
        if name in self._builtins:
            if name not in self._builtin_cache:
                self._builtin_cache[name] = self._builtins[name](self)
            return self._builtin_cache[name]
        target = self._find_key(name, path)
        if target is not None:
            value = self.resolved(target)
            if isinstance(value, dict | list):
                kind = "mapping" if isinstance(value, dict) else "list"
                raise BpsConfigError(
                    f"{format_path(path)}: placeholder {{{name}}} refers to {format_path(target)}, "
                    f"which is a {kind}, not a single value "
                    f"(in {self._tree.source_of(path)})"
                )
            if value is None:
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
        for end in range(len(path) - 1, -1, -1):
            candidate = (*path[:end], name)
            if self.has(candidate):
                return candidate
        matches = self._leaves.get(name, [])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            where = ", ".join(format_path(p) for p in matches)
            raise BpsConfigError(
                f"{format_path(path)}: placeholder {{{name}}} is ambiguous: it could mean any of {where} "
                f"(in {self._tree.source_of(path)}); move the key next to its use or rename one"
            )
        return None
