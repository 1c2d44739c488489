"""RUN and CHAINED collections, chain definitions and their flattening into a run search order.

A collection's id and type never change once created, so they are cached.  Chain *contents* can
be redefined at any time (by another process, too), so they are read from the database whenever
a chain is resolved; a list made only of RUN names resolves without any query after first use.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from .._collection_names import check_collection_name
from .._exceptions import CollectionTypeError, ConflictingDefinitionError, MissingCollectionError
from ._database import Database


class CollectionType(enum.StrEnum):
    """The kinds of collection."""

    RUN = "RUN"
    """Holds datasets; every dataset belongs to exactly one RUN."""
    CHAINED = "CHAINED"
    """An ordered list of other collections, searched in order."""


class CollectionManager:
    """Creates collections and resolves names (runs and chains) to ordered run lists."""

    def __init__(self, db: Database, collection: sa.Table, chain: sa.Table) -> None:
        self._db = db
        self._table = collection
        self._chain = chain
        self._by_name: dict[str, tuple[int, CollectionType]] = {}
        self._names: dict[int, str] = {}
        self._runs_cache: dict[tuple[str, ...], tuple[tuple[str, int], ...]] = {}
        self._select_by_name = sa.select(collection.c.id, collection.c.type).where(
            collection.c.name == sa.bindparam("name")
        )

    def _remember(self, name: str, collection_id: int, ctype: CollectionType) -> None:
        def update() -> None:
            self._by_name[name] = (collection_id, ctype)
            self._names[collection_id] = name

        self._db.on_commit(update)

    def lookup(self, conn: sa.Connection, name: str) -> tuple[int, CollectionType] | None:
        cached = self._by_name.get(name)
        if cached is not None:
            return cached
        row = conn.execute(self._select_by_name, {"name": name}).first()
        if row is None:
            return None
        found = (int(row[0]), CollectionType(row[1]))
        self._remember(name, *found)
        return found

    def find(self, conn: sa.Connection, name: str) -> tuple[int, CollectionType]:
        found = self.lookup(conn, name)
        if found is None:
            raise MissingCollectionError(f"collection {name!r} does not exist")
        return found

    def run_id(self, conn: sa.Connection, name: str) -> int:
        """Id of RUN collection ``name``; CollectionTypeError if it is a chain."""
        cid, ctype = self.find(conn, name)
        if ctype is not CollectionType.RUN:
            raise CollectionTypeError(
                f"collection {name!r} is {ctype.value}, not a RUN; datasets go into runs"
            )
        return cid

    def name_of(self, conn: sa.Connection, collection_id: int) -> str:
        cached = self._names.get(collection_id)
        if cached is not None:
            return cached
        row = conn.execute(
            sa.select(self._table.c.name, self._table.c.type).where(self._table.c.id == collection_id)
        ).first()
        if row is None:
            raise MissingCollectionError(f"no collection with id {collection_id}")
        self._remember(row[0], collection_id, CollectionType(row[1]))
        return str(row[0])

    def _insert_or_get(
        self, conn: sa.Connection, name: str, ctype: CollectionType, doc: str
    ) -> tuple[int, bool]:
        """Create collection ``name`` unless it exists; (its id, whether this call created it).

        Another process may create the same name at the same moment: the insert skips a row that
        conflicts on the name (waiting, on PostgreSQL, for the other transaction to finish), and
        the row is then read back, so both callers agree on one collection.  An existing one of
        the other kind is CollectionTypeError.
        """
        t = self._table
        inserted = conn.execute(
            self._db.insert_ignore(t, ["name"]).values(name=name, type=ctype.value, doc=doc).returning(t.c.id)
        ).first()
        row = conn.execute(self._select_by_name, {"name": name}).first()
        if row is None:  # pragma: no cover - the row was just inserted or found conflicting
            raise ConflictingDefinitionError(f"collection {name!r} vanished while being created")
        found = CollectionType(row[1])
        if found is not ctype:
            raise CollectionTypeError(f"collection {name!r} exists and is {found.value}, not {ctype.value}")
        self._remember(name, int(row[0]), found)
        return int(row[0]), inserted is not None

    def register_run(self, name: str, doc: str = "") -> bool:
        """Create RUN ``name``; False if it already exists as a RUN (also when created concurrently)."""
        check_collection_name(name)
        with self._db.transaction() as conn:
            existing = self.lookup(conn, name)
            if existing is not None:
                if existing[1] is not CollectionType.RUN:
                    raise CollectionTypeError(
                        f"collection {name!r} exists and is {existing[1].value}, not a RUN"
                    )
                return False
            return self._insert_or_get(conn, name, CollectionType.RUN, doc)[1]

    def _all_edges(self, conn: sa.Connection) -> dict[int, list[int]]:
        chain = self._chain
        rows = conn.execute(
            sa.select(chain.c.parent, chain.c.child).order_by(chain.c.parent, chain.c.position)
        )
        edges: dict[int, list[int]] = {}
        for parent, child in rows:
            edges.setdefault(int(parent), []).append(int(child))
        return edges

    def register_chain(self, name: str, children: list[str], *, prepend: bool = False) -> None:
        """Create or redefine CHAINED ``name``; with ``prepend`` put ``children`` before its current ones."""
        if isinstance(children, str):
            children = [children]
        new = list(children)
        if prepend:
            self.update_chain(name, lambda current: new + [c for c in current if c not in new])
        else:
            self.update_chain(name, lambda current: new)

    def update_chain(self, name: str, update: Callable[[list[str]], list[str]]) -> list[str]:
        """Set CHAINED ``name`` (created if new) to ``update(current children)``, atomically.

        The chain's own collection row is locked first (``SELECT ... FOR UPDATE`` on PostgreSQL;
        on SQLite the write transaction already holds the database's write lock), and its
        children are read only after that, so concurrent updates of one chain -- many merges
        prepending their runs at once -- queue up and each sees the previous one's result: no
        update is lost.  ``update`` gets the current child names (empty for a new chain) and
        returns the new list, duplicates dropped.  Returns that list.
        """
        check_collection_name(name)
        with self._db.transaction() as conn:
            existing = self.lookup(conn, name)
            if existing is not None and existing[1] is not CollectionType.CHAINED:
                raise CollectionTypeError(
                    f"collection {name!r} exists and is {existing[1].value}, not CHAINED"
                )
            if existing is None:
                parent_id = self._insert_or_get(conn, name, CollectionType.CHAINED, "")[0]
            else:
                parent_id = existing[0]
            t = self._table
            conn.execute(sa.select(t.c.id).where(t.c.id == parent_id).with_for_update()).all()
            edges = self._all_edges(conn)
            current = [self.name_of(conn, c) for c in edges.get(parent_id, [])]
            wanted = update(current)
            child_ids: list[int] = []
            names: list[str] = []
            for child in wanted:
                cid = self.find(conn, child)[0]
                if cid not in child_ids:
                    child_ids.append(cid)
                    names.append(child)
            edges[parent_id] = child_ids
            self._check_no_cycle(conn, parent_id, edges)
            conn.execute(sa.delete(self._chain).where(self._chain.c.parent == parent_id))
            if child_ids:
                conn.execute(
                    sa.insert(self._chain),
                    [{"parent": parent_id, "position": i, "child": c} for i, c in enumerate(child_ids)],
                )
        return names

    def _check_no_cycle(self, conn: sa.Connection, start: int, edges: dict[int, list[int]]) -> None:
        def visit(node: int, path: list[int]) -> None:
            for child in edges.get(node, []):
                if child == start:
                    names = [self.name_of(conn, c) for c in path + [child]]
                    raise ConflictingDefinitionError(
                        f"collection chain would contain a cycle: {' -> '.join(names)}"
                    )
                if child not in path:
                    visit(child, path + [child])

        visit(start, [start])

    def get_type(self, name: str) -> CollectionType:
        with self._db.connection() as conn:
            return self.find(conn, name)[1]

    def get_chain(self, name: str) -> list[str]:
        with self._db.connection() as conn:
            cid, ctype = self.find(conn, name)
            if ctype is not CollectionType.CHAINED:
                raise CollectionTypeError(f"collection {name!r} is {ctype.value}, not CHAINED")
            chain = self._chain
            rows = conn.execute(
                sa.select(chain.c.child).where(chain.c.parent == cid).order_by(chain.c.position)
            ).all()
            return [self.name_of(conn, int(r[0])) for r in rows]

    def query(self, pattern: str | None = None) -> list[tuple[str, str]]:
        """(name, type) of every collection matching the glob ``pattern``, sorted by name."""
        t = self._table
        with self._db.connection() as conn:
            rows = conn.execute(sa.select(t.c.name, t.c.type).order_by(t.c.name)).all()
        return [(str(n), str(ty)) for n, ty in rows if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def resolve(self, conn: sa.Connection, names: str | Iterable[str]) -> tuple[tuple[str, int], ...]:
        """Flatten ``names`` into (run name, run id) in search order, first occurrence kept."""
        key = (names,) if isinstance(names, str) else tuple(names)
        cached = self._runs_cache.get(key)
        if cached is not None:
            return cached
        found = [(name, *self.find(conn, name)) for name in key]
        if all(ctype is CollectionType.RUN for _, _, ctype in found):
            out: list[tuple[str, int]] = []
            for name, cid, _ in found:
                if (name, cid) not in out:
                    out.append((name, cid))
            result = tuple(out)
            self._db.on_commit(lambda: self._runs_cache.__setitem__(key, result))
            return result
        edges = self._all_edges(conn)
        types: dict[int, CollectionType] = {cid: ctype for _, cid, ctype in found}
        seen: set[int] = set()
        runs: list[tuple[str, int]] = []

        def walk(cid: int, stack: tuple[int, ...]) -> None:
            if cid in stack:  # defensive: chains are checked for cycles when defined
                return
            ctype = types.get(cid)
            if ctype is None:
                ctype = self.find(conn, self.name_of(conn, cid))[1]
                types[cid] = ctype
            if ctype is CollectionType.RUN:
                if cid not in seen:
                    seen.add(cid)
                    runs.append((self.name_of(conn, cid), cid))
                return
            for child in edges.get(cid, []):
                walk(child, stack + (cid,))

        for _, cid, _ in found:
            walk(cid, ())
        return tuple(runs)
