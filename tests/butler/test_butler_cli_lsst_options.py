"""The options LSST users reach for on the ``butler`` commands we share, on SQLite and PostgreSQL.

``query-datasets --limit --order-by --show-uri``, ``query-dataset-types --collections -v``,
``query-collections --chains --collection-type``, ``create --seed-config --override`` and
``ingest-files --formatter --id-generation-mode`` (``transfer-from-graph``'s are tested with the
merge, in tests/quantumgraph).  Every repository here is created through the command line, with
its registry in the ``db_url`` database.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from butler_testdata import dimension_data
from click.testing import CliRunner, Result

from butler import Butler
from butler.cli import main


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args: str | Path) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def rows(output: str) -> list[list[str]]:
    """A table's body rows (after the header and dashes), split on whitespace."""
    return [line.split() for line in output.splitlines()[2:] if line.strip()]


@pytest.fixture
def repo(tmp_path: Path, db_url: str) -> Path:
    """Records, a ``raw`` type and raws for exposures 1..6 x detectors 1..3 in ``Cam/raw/all``;
    chains ``Cam/defaults`` -> [Cam/raw/all] and ``Cam/all`` -> [Cam/defaults, Cam/other]."""
    root = tmp_path / "repo"
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump(dimension_data()))
    ok("create", root, "--db-url", db_url)
    ok("insert-dimension-records", root, records)
    ok("register-dataset-type", root, "raw", "StructuredDataDict", "exposure", "detector")
    ok("register-dataset-type", root, "calexp", "StructuredDataDict", "exposure", "detector")
    with Butler(root, run="Cam/raw/all") as butler:
        for e in range(1, 7):
            for d in (1, 2, 3):
                butler.put({"e": e, "d": d}, "raw", instrument="Cam", exposure=e, detector=d)
        butler.registry.register_run("Cam/other")
        butler.registry.register_chain("Cam/defaults", ["Cam/raw/all"])
        butler.registry.register_chain("Cam/all", ["Cam/defaults", "Cam/other"])
    return root


def test_query_datasets_order_by_limit_and_show_uri(repo: Path) -> None:
    base = ["query-datasets", repo, "raw", "--collections", "Cam/defaults"]
    # Descending exposure time (a field of the exposure record), then detector.
    table = rows(ok(*base, "--order-by", "-exposure.exposure_time,detector").stdout)
    pairs = [(int(r[5]), int(r[4])) for r in table]  # columns: type run id instrument detector exposure
    assert pairs == [(e, d) for e in range(6, 0, -1) for d in (1, 2, 3)]
    # --limit keeps the first N of that order; repeated --order-by works like commas.
    limited = ok(*base, "--order-by", "-detector", "--order-by", "exposure", "--limit", "4")
    assert [(int(r[4]), int(r[5])) for r in rows(limited.stdout)] == [(3, 1), (3, 2), (3, 3), (3, 4)]
    assert "more than" not in limited.stderr
    # A negative limit caps the same way and warns that there were more.
    capped = ok(*base, "--limit", "-2")
    assert len(rows(capped.stdout)) == 2
    assert "more than 2 datasets match; showing the first 2 (--limit)" in capped.stderr
    # Find-first over two runs: the database sorts the winners, not every match.
    with Butler(repo, run="Cam/other") as butler:
        for d in (1, 2, 3):
            butler.put({"other": d}, "raw", instrument="Cam", exposure=1, detector=d)
    both = ["query-datasets", repo, "raw", "--collections", "Cam/other,Cam/raw/all"]
    first = rows(ok(*both, "--order-by", "-detector", "--limit", "3").stdout)
    assert [(r[1], int(r[4]), int(r[5])) for r in first] == [
        ("Cam/other", 3, 1),
        ("Cam/raw/all", 3, 2),
        ("Cam/raw/all", 3, 3),
    ]
    every = rows(ok(*both, "--no-find-first", "--order-by", "-detector,exposure", "--limit", "3").stdout)
    assert sorted((r[1], int(r[5])) for r in every) == [
        ("Cam/other", 1),
        ("Cam/raw/all", 1),
        ("Cam/raw/all", 2),
    ]
    # --show-uri: a file:// URI per dataset, pointing at the file that holds it.
    shown = ok(*base, "--where", "exposure = 2 AND detector = 3", "--show-uri")
    (row,) = rows(shown.stdout)
    assert shown.stdout.splitlines()[0].split()[-1] == "uri"
    assert row[-1].startswith("file:///")
    assert yaml.safe_load(Path(row[-1].removeprefix("file://")).read_text()) == {"e": 2, "d": 3}


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        ("colour", "order by 'colour': 'colour' is not a dimension"),
        ("exposure.colour", "order by 'exposure.colour': dimension exposure has no field 'colour'"),
        ("tract", "order by 'tract': dimension 'tract' is not among the dimensions of dataset type raw"),
    ],
)
def test_query_datasets_bad_order_by_is_one_line_error(repo: Path, order_by: str, message: str) -> None:
    result = run("query-datasets", repo, "raw", "--collections", "Cam/defaults", "--order-by", order_by)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}"), line


def test_query_collections_chains_and_collection_type(repo: Path) -> None:
    table = ok("query-collections", repo).stdout  # skybatch's table, as before
    assert table.splitlines()[0].split() == ["name", "type", "children"]
    assert ["Cam/all", "CHAINED", "Cam/defaults,", "Cam/other"] in rows(table)
    tree = ok("query-collections", repo, "Cam/all", "--chains", "tree").stdout.splitlines()[2:]
    assert [(len(x) - len(x.lstrip()), *x.split()) for x in tree] == [
        (0, "Cam/all", "CHAINED"),
        (2, "Cam/defaults", "CHAINED"),
        (4, "Cam/raw/all", "RUN"),
        (2, "Cam/other", "RUN"),
    ]
    inverse = ok("query-collections", repo, "Cam/raw/all", "--chains", "INVERSE-TREE").stdout.splitlines()[2:]
    assert [(len(x) - len(x.lstrip()), x.split()[0]) for x in inverse] == [
        (0, "Cam/raw/all"),
        (2, "Cam/defaults"),
        (4, "Cam/all"),
    ]
    parents = rows(ok("query-collections", repo, "--chains", "INVERSE-TABLE").stdout)
    assert ["Cam/defaults", "CHAINED", "Cam/all"] in parents and [
        "Cam/raw/all",
        "RUN",
        "Cam/defaults",
    ] in parents
    flat = rows(ok("query-collections", repo, "Cam/all", "--chains", "FLATTEN").stdout)
    assert [r[0] for r in flat] == ["Cam/all", "Cam/defaults", "Cam/raw/all", "Cam/other"]
    bare = rows(ok("query-collections", repo, "--chains", "NO-CHILDREN", "--collection-type", "RUN").stdout)
    assert bare == [["Cam/other", "RUN"], ["Cam/raw/all", "RUN"]]
    chained = rows(ok("query-collections", repo, "--collection-type", "chained,TAGGED").stdout)
    assert [r[0] for r in chained] == ["Cam/all", "Cam/defaults"]
    bad = run("query-collections", repo, "--collection-type", "LOOSE")
    assert bad.exit_code == 2 and "LOOSE: not a collection type" in bad.stderr


def test_query_dataset_types_collections_and_verbose(repo: Path) -> None:
    everything = rows(ok("query-dataset-types", repo).stdout)
    assert [r[0] for r in everything] == ["calexp", "raw"]
    with_data = ok("query-dataset-types", repo, "--collections", "Cam/all", "-v").stdout
    assert rows(with_data) == [["raw", "instrument", "detector", "exposure", "StructuredDataDict"]]
    assert rows(ok("query-dataset-types", repo, "--collections", "Cam/other").stdout) == []
    missing = run("query-dataset-types", repo, "--collections", "Cam/nope")
    assert missing.exit_code == 1 and "Cam/nope" in missing.stderr


def test_create_with_seed_config_and_override(tmp_path: Path, db_url: str) -> None:
    seed = tmp_path / "seed.yaml"
    elsewhere = tmp_path / "store"
    seed.write_text(
        yaml.safe_dump(
            {
                "registry": {"db": db_url, "managers": {"datasets": "lsst.whatever"}},
                "datastore": {
                    "cls": "lsst.daf.butler.datastores.fileDatastore.FileDatastore",
                    "root": str(elsewhere),
                    "template": "{run}/{datasetType}/{instrument}/{detector}/{datasetType}_{exposure}",
                    "verify_checksums": True,
                },
            }
        )
    )
    plain = run("create", tmp_path / "plain", "--seed-config", seed)
    assert plain.exit_code == 0, plain.output
    assert "ignored keys skybatch does not use: registry.managers, datastore.cls" in plain.stderr
    assert f"datastore.root {elsewhere} not used (pass --override to use it)" in plain.stderr
    config = yaml.safe_load((tmp_path / "plain" / "butler.yaml").read_text())
    if db_url.startswith("sqlite"):  # a SQLite file is repository-relative: kept only with --override
        assert f"registry.db {db_url} not used (a SQLite file; pass --override to use it)" in plain.stderr
        assert config["registry"]["db"] == f"sqlite:///{tmp_path / 'plain' / 'registry.sqlite3'}"
    else:  # a database server is not: the seed's is used
        assert config["registry"]["db"] == db_url
        with Butler(tmp_path / "plain", writeable=False) as butler:
            assert butler.registry.engine.dialect.name == "postgresql"
    assert config["datastore"]["root"] == "."
    assert config["datastore"]["verify_checksums"] is True
    # --override: the seed's root is used too; puts land there, under the seed's template.
    second_db = f"sqlite:///{tmp_path / 'second.sqlite3'}"  # --db-url wins over the seed's database
    ok("create", tmp_path / "over", "--seed-config", seed, "--override", "--db-url", second_db)
    config = yaml.safe_load((tmp_path / "over" / "butler.yaml").read_text())
    assert config["datastore"]["root"] == str(elsewhere) and config["registry"]["db"] == second_db
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump(dimension_data()))
    ok("insert-dimension-records", tmp_path / "over", records)
    ok("register-dataset-type", tmp_path / "over", "raw", "StructuredDataDict", "exposure", "detector")
    with Butler(tmp_path / "over", run="r") as butler:
        ref = butler.put({"x": 1}, "raw", instrument="Cam", exposure=1, detector=2)
    assert (elsewhere / "r" / "raw" / "Cam" / "2" / "raw_1.yaml").is_file() and ref.run == "r"
    alone = run("create", tmp_path / "alone", "--override")
    assert alone.exit_code == 2 and "--override needs --seed-config" in alone.stderr


def test_ingest_files_formatter_and_id_generation_mode(repo: Path, tmp_path: Path) -> None:
    files = tmp_path / "json_raws"
    files.mkdir()
    table = tmp_path / "raws.csv"
    lines = ["path,exposure,detector"]
    for d in (1, 2):
        (files / f"calexp_{d}.json").write_text(json.dumps({"json": d}))
        lines.append(f"json_raws/calexp_{d}.json,1,{d}")
    table.write_text("\n".join(lines) + "\n")
    args = ["ingest-files", repo, "calexp", "--data-id", "instrument=Cam"]
    # The storage class's default (yaml) cannot read a .json file; --formatter says which can.
    refused = run(*args[:3], "u/a", table, *args[3:])
    assert refused.exit_code == 1 and "suffix is .json" in refused.stderr
    ok(*args[:3], "u/a", table, *args[3:], "--formatter", "lsst.daf.butler.formatters.json.JsonFormatter",
       "--id-generation-mode", "dataid_type_run")  # fmt: skip
    ok(*args[:3], "u/b", table, *args[3:], "--formatter", "json", "--id-generation-mode", "DATAID_TYPE")
    with Butler(repo, writeable=False) as butler:
        a = {r.data_id["detector"]: r for r in butler.query_datasets("calexp", ["u/a"])}
        b = {r.data_id["detector"]: r for r in butler.query_datasets("calexp", ["u/b"])}
        assert butler.get(a[2]) == {"json": 2} and butler.get(b[1]) == {"json": 1}
    # Reproducible IDs: UUIDv5, the same when the same file is ingested into another repository.
    assert {ref.id.version for ref in (*a.values(), *b.values())} == {5}
    assert a[1].id != b[1].id  # DATAID_TYPE_RUN includes the run, DATAID_TYPE does not
    other = tmp_path / "other"
    ok("create", other)
    ok("insert-dimension-records", other, _records(tmp_path))
    ok("register-dataset-type", other, "calexp", "StructuredDataDict", "exposure", "detector")
    ok("ingest-files", other, "calexp", "u/a", table, "--data-id", "instrument=Cam", "--formatter", "json",
       "--id-generation-mode", "DATAID_TYPE_RUN")  # fmt: skip
    with Butler(other, writeable=False) as butler:
        again = {r.data_id["detector"]: r.id for r in butler.query_datasets("calexp", ["u/a"])}
    assert again == {d: ref.id for d, ref in a.items()}
    # A formatter that cannot hold the storage class's objects, and an unknown one.
    npy = run(*args[:3], "u/c", table, *args[3:], "--formatter", "npy")
    assert (
        npy.exit_code == 1 and "formatter npy: it cannot hold storage class StructuredDataDict" in npy.stderr
    )
    unknown = run(*args[:3], "u/c", table, *args[3:], "--formatter", "fits")
    assert unknown.exit_code == 2 and "'fits': unknown formatter; known: " in unknown.stderr
    assert "json, jsonl, npy" in unknown.stderr
    default = ok(*args[:3], "u/d", _yaml_table(tmp_path), *args[3:])
    assert "Ingested 1 file(s)" in default.output
    with Butler(repo, writeable=False) as butler:
        (ref,) = butler.query_datasets("calexp", ["u/d"])
    assert ref.id.version == 4 and isinstance(ref.id, uuid.UUID)  # UNIQUE: random


def _records(tmp_path: Path) -> Path:
    path = tmp_path / "records.yaml"
    path.write_text(yaml.safe_dump(dimension_data()))
    return path


def _yaml_table(tmp_path: Path) -> Path:
    (tmp_path / "one.yaml").write_text("a: 1\n")
    table = tmp_path / "one.csv"
    table.write_text("path,exposure,detector\none.yaml,3,3\n")
    return table


def test_transfer_from_graph_dataset_type_and_dry_run(tmp_path: Path, db_url: str) -> None:
    """The merge restricted to some dataset types, and looked at without changing anything."""
    from quantumgraph.cli import main as pipetask
    from quantumgraph.demo import repo as demo

    root = tmp_path / "demo"
    with Butler.create(root, db_url=db_url) as butler:
        demo.insert_demo_dimension_records(butler, 1, 2)
        demo.register_demo_collections(butler)
        demo.put_demo_raws(butler, 1, 2)
    graph = tmp_path / "g.qgraph"
    pipeline = Path(__file__).resolve().parents[2] / "submit_configs" / "quickstart_pipeline.yaml"
    built = CliRunner().invoke(
        pipetask,
        ["qgraph", "-b", str(root), "-i", demo.DEFAULTS, "-o", "u/me/merge", "--output-run", "u/me/merge/r",
         "-p", str(pipeline), "--save-qgraph", str(graph)],
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    for job in ("pre-exec-init-qbb", "run-qbb"):  # what the batch jobs do
        ran = CliRunner().invoke(pipetask, [job, str(root), str(graph)])
        assert ran.exit_code == 0, ran.output

    dry = ok("transfer-from-graph", graph, root, "--dry-run")
    # 5 quanta, each with its output, log and metadata; 3 configs and the run's packages
    assert dry.stdout.startswith("dry run: 19 of 19 predicted outputs found; 19 would be newly registered")
    assert dry.stdout.rstrip().endswith("nothing changed")
    with Butler(root, writeable=False) as butler:
        assert "u/me/merge/r" not in dict(butler.registry.query_collections())  # not even the run

    only = ok("transfer-from-graph", graph, root, "--dataset-type", "postISR,calexp")
    assert "4 of 4 predicted outputs found; 4 newly registered" in only.stdout
    with Butler(root, writeable=False) as butler:
        registered = {
            name: len(butler.query_datasets(name, ["u/me/merge"])) for name in ("postISR", "calexp")
        }
        assert registered == {"postISR": 2, "calexp": 2}
        assert butler.registry.get_chain("u/me/merge")[0] == "u/me/merge/r"
        for name in ("summary", "isr_config"):
            assert butler.query_datasets(name, ["u/me/merge"]) == []
    rest = ok("transfer-from-graph", graph, root, "--dry-run")
    assert "19 of 19 predicted outputs found; 15 would be newly registered" in rest.stdout
    unknown = run("transfer-from-graph", graph, root, "--dataset-type", "calexpp")
    assert unknown.exit_code == 1
    assert "--dataset-type calexpp: not a dataset type of" in unknown.stderr and "calexp" in unknown.stderr
