"""The ``butler`` command line: every command through CliRunner, and the console script for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import click
import pytest
import yaml
from butler_testdata import dimension_data
from click.testing import CliRunner, Result

from butler.cli import PluginGroup, main


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository made through the CLI, with records and a ``raw`` dataset type."""
    root = tmp_path / "repo"
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump(dimension_data()))
    assert run("create", root).exit_code == 0
    assert run("insert-dimension-records", root, records).exit_code == 0
    assert (
        run("register-dataset-type", root, "raw", "StructuredDataDict", "exposure", "detector").exit_code == 0
    )
    return root


@pytest.fixture
def raws_csv(tmp_path: Path) -> Path:
    """Six raw files under ``files/`` and a CSV listing them with relative paths."""
    files = tmp_path / "files"
    files.mkdir()
    lines = ["path,exposure,detector"]
    for e in (1, 2, 3):
        for d in (1, 2):
            (files / f"raw_{e}_{d}.yaml").write_text(yaml.safe_dump({"exposure": e, "detector": d}))
            lines.append(f"files/raw_{e}_{d}.yaml,{e},{d}")
    table = tmp_path / "raws.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def test_help_lists_builtins_and_plugins() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for name in (
        "create",
        "insert-dimension-records",
        "register-dataset-type",
        "ingest-files",
        "query-datasets",
        "query-collections",
        "query-dataset-types",
        "transfer-from-graph",
    ):
        assert name in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        "create",
        "insert-dimension-records",
        "register-dataset-type",
        "ingest-files",
        "query-datasets",
        "query-collections",
        "query-dataset-types",
    ],
)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and f"butler {command}" in result.stdout


def test_create(tmp_path: Path) -> None:
    result = run("create", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert "Created butler repository" in result.stdout
    assert (tmp_path / "r" / "butler.yaml").is_file()
    again = run("create", tmp_path / "r")
    assert again.exit_code == 1
    assert again.stderr.startswith("error: cannot create a repository") and "already exists" in again.stderr
    assert "Traceback" not in again.output


def test_create_with_custom_universe(tmp_path: Path) -> None:
    config = tmp_path / "dims.yaml"
    config.write_text(
        yaml.safe_dump({"version": 1, "dimensions": {"site": {"key": {"name": "name", "type": "string"}}}})
    )
    assert run("create", tmp_path / "r", "--dimension-config", config).exit_code == 0
    from butler import Butler

    with Butler(tmp_path / "r") as butler:
        assert butler.universe.names == ("site",)


def test_insert_dimension_records(repo: Path, tmp_path: Path) -> None:
    records = tmp_path / "more.yaml"
    records.write_text(
        yaml.safe_dump({"detector": [{"instrument": "Cam", "id": 1}, {"instrument": "Cam", "id": 9}]})
    )
    conflict = run("insert-dimension-records", repo, records)
    assert conflict.exit_code == 1
    assert "already exist" in conflict.stderr and "--skip-existing" in conflict.stderr
    ok = run("insert-dimension-records", repo, records, "--skip-existing")
    assert ok.exit_code == 0 and "detector: 1 record(s) inserted (1 already present)" in ok.stdout
    records.write_text(
        yaml.safe_dump(
            {"exposure": [{"instrument": "Cam", "id": 50, "physical_filter": "zz", "day_obs": 20260101}]}
        )
    )
    bad = run("insert-dimension-records", repo, records)
    assert (
        bad.exit_code == 1 and "physical_filter=zz is not a registered value for instrument=Cam" in bad.stderr
    )
    records.write_text("- just a list\n")
    assert run("insert-dimension-records", repo, records).exit_code == 1


def test_register_dataset_type(repo: Path) -> None:
    again = run("register-dataset-type", repo, "raw", "StructuredDataDict", "detector", "exposure")
    assert again.exit_code == 0 and "Already registered" in again.stdout
    conflict = run("register-dataset-type", repo, "raw", "Json", "exposure", "detector")
    assert conflict.exit_code == 1 and "storage class: Json" in conflict.stderr
    unknown_sc = run("register-dataset-type", repo, "x", "Nope", "exposure")
    assert unknown_sc.exit_code == 1 and "unknown storage class 'Nope'" in unknown_sc.stderr
    unknown_dim = run("register-dataset-type", repo, "x", "Json", "exposur")
    assert unknown_dim.exit_code == 1 and "unknown dimension 'exposur'" in unknown_dim.stderr
    no_dims = run("register-dataset-type", repo, "packages", "Json")
    assert no_dims.exit_code == 0 and "dimensions: none" in no_dims.stdout


def test_ingest_and_query(repo: Path, raws_csv: Path) -> None:
    result = run("ingest-files", repo, "raw", "Cam/raw/all", raws_csv, "--data-id", "instrument=Cam")
    assert result.exit_code == 0, result.output
    assert "Ingested 6 file(s) as raw into run Cam/raw/all" in result.stdout

    query = run(
        "query-datasets",
        repo,
        "raw",
        "--collections",
        "Cam/raw/all",
        "--where",
        "band = 'r' AND detector = 2",
    )
    assert query.exit_code == 0, query.output
    lines = query.stdout.splitlines()
    assert lines[0].split() == ["type", "run", "id", "instrument", "detector", "exposure"]
    assert [line.split()[-1] for line in lines[2:]] == ["1", "3"]

    from butler import Butler

    with Butler(repo, collections="Cam/raw/all") as butler:
        assert butler.get("raw", instrument="Cam", exposure=3, detector=2) == {"exposure": 3, "detector": 2}


def test_ingest_errors(repo: Path, raws_csv: Path, tmp_path: Path) -> None:
    missing_dim = run("ingest-files", repo, "raw", "run", raws_csv)
    assert missing_dim.exit_code == 1 and "lacks instrument" in missing_dim.stderr
    both = run("ingest-files", repo, "raw", "run", raws_csv, "--data-id", "exposure=1")
    assert both.exit_code == 2 and "exposure given both" in both.stderr
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("path,exposure\nfiles/raw_1_1.yaml,1,9\n")
    bad = run("ingest-files", repo, "raw", "run", ragged, "--data-id", "instrument=Cam")
    assert bad.exit_code == 1 and "line 2" in bad.stderr
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("path,exposure,detector\nfiles/raw_1_1.yaml,1,99\n")
    bad_value = run(
        "ingest-files", repo, "raw", "run", unknown, "--data-id", "instrument=Cam", "--prefix", tmp_path
    )
    assert bad_value.exit_code == 1 and "detector=99 is not a registered value" in bad_value.stderr
    assert run("query-collections", repo).stdout == ""


def test_query_datasets_options(repo: Path, raws_csv: Path) -> None:
    assert run("ingest-files", repo, "raw", "a", raws_csv, "--data-id", "instrument=Cam").exit_code == 0
    assert (
        run(
            "ingest-files", repo, "raw", "b", raws_csv, "--data-id", "instrument=Cam", "--transfer", "symlink"
        ).exit_code
        == 0
    )
    first = run("query-datasets", repo, "raw", "--collections", "b,a", "--where", "exposure = 1")
    assert first.exit_code == 0
    assert [line.split()[1] for line in first.stdout.splitlines()[2:]] == ["b", "b"]
    every = run(
        "query-datasets",
        repo,
        "raw",
        "--collections",
        "b",
        "--collections",
        "a",
        "--no-find-first",
        "--where",
        "exposure = 1",
    )
    assert [line.split()[1] for line in every.stdout.splitlines()[2:]] == ["b", "a", "b", "a"]
    all_types = run("query-datasets", repo, "--where", "detector = 1")
    assert all_types.exit_code == 0 and len(all_types.stdout.splitlines()) == 2 + 6
    assert run("query-datasets", repo, "r*", "--collections", "a").stdout.count("raw") == 6
    needs_order = run("query-datasets", repo, "raw", "--find-first")
    assert needs_order.exit_code == 2 and "--find-first needs --collections" in needs_order.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["raw", "--collections", "a", "--where", "detector IN (1,"], "expected"),
        (["raw", "--collections", "a", "--where", "tract = 1"], "'tract' is not among the dimensions"),
        (["nope", "--collections", "a"], "dataset type 'nope' is not registered"),
        (["raw", "--collections", "zzz"], "collection 'zzz' does not exist"),
    ],
)
def test_query_datasets_errors(repo: Path, raws_csv: Path, args: list[str], message: str) -> None:
    assert run("ingest-files", repo, "raw", "a", raws_csv, "--data-id", "instrument=Cam").exit_code == 0
    result = run("query-datasets", repo, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_query_collections_and_dataset_types(repo: Path, raws_csv: Path) -> None:
    from butler import Butler

    assert (
        run("ingest-files", repo, "raw", "Cam/raw/all", raws_csv, "--data-id", "instrument=Cam").exit_code
        == 0
    )
    with Butler(repo) as butler:
        butler.registry.register_run("Cam/calib")
        butler.registry.register_chain("Cam/defaults", ["Cam/raw/all", "Cam/calib"])
    result = run("query-collections", repo)
    assert result.exit_code == 0
    rows = [line.split(None, 2) for line in result.stdout.splitlines()[2:]]
    assert rows == [
        ["Cam/calib", "RUN"],
        ["Cam/defaults", "CHAINED", "Cam/raw/all, Cam/calib"],
        ["Cam/raw/all", "RUN"],
    ]
    assert len(run("query-collections", repo, "*/defaults").stdout.splitlines()) == 3
    types = run("query-dataset-types", repo)
    assert types.stdout.splitlines()[2].split() == [
        "raw",
        "instrument",
        "detector",
        "exposure",
        "StructuredDataDict",
    ]
    assert run("query-dataset-types", repo, "calexp*").stdout == ""


def test_missing_repository_is_one_line_error(tmp_path: Path) -> None:
    result = run("query-collections", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "no butler repository" in result.stderr


def test_bad_log_level() -> None:
    result = run("--log-level", "LOUD", "--help")
    assert result.exit_code == 2 and "level must be one of" in result.stderr


# -- plugins -------------------------------------------------------------------------------------


@pytest.fixture
def plugin_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    """A PluginGroup whose entry points are a working command, a broken module and a non-command."""
    (tmp_path / "fake_butler_plugin.py").write_text(
        textwrap.dedent(
            """
            import click

            @click.command("hello")
            @click.argument("who")
            def hello(who):
                '''Say hello.'''
                click.echo(f"hello {who}")

            not_a_command = 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        EntryPoint("hello", "fake_butler_plugin:hello", "test.group"),
        EntryPoint("broken", "no_such_module_anywhere:cmd", "test.group"),
        EntryPoint("odd", "fake_butler_plugin:not_a_command", "test.group"),
        EntryPoint("builtin", "fake_butler_plugin:hello", "test.group"),
    ]
    monkeypatch.setattr("butler.cli._group.entry_points", lambda group: eps if group == "test.group" else [])
    monkeypatch.delitem(sys.modules, "fake_butler_plugin", raising=False)

    @click.group(cls=PluginGroup, plugin_group="test.group")
    def group() -> None:
        """Test group."""

    @group.command("builtin")
    def builtin() -> None:
        click.echo("the built-in")

    return group


def test_plugins_are_listed_with_their_help_and_run(plugin_group: click.Group) -> None:
    runner = CliRunner()
    listing = runner.invoke(plugin_group, ["--help"])
    assert listing.exit_code == 0
    assert "hello" in listing.stdout and "broken" in listing.stdout
    # A plugin that fails to load is still listed, by where it comes from, and --help works.
    assert "(provided by no_such_module_anywhere" in listing.stdout
    assert "Say hello." in listing.stdout
    result = runner.invoke(plugin_group, ["hello", "world"])
    assert result.exit_code == 0 and result.stdout == "hello world\n"
    assert runner.invoke(plugin_group, ["builtin"]).stdout == "the built-in\n"


def test_broken_plugins_give_clear_errors(plugin_group: click.Group) -> None:
    runner = CliRunner()
    broken = runner.invoke(plugin_group, ["broken"])
    assert (
        broken.exit_code == 1
        and "'broken' (from no_such_module_anywhere:cmd) could not be loaded" in broken.stderr
    )
    odd = runner.invoke(plugin_group, ["odd"])
    assert odd.exit_code == 1 and "is not a click command" in odd.stderr


def test_help_describes_plugin_commands_without_heavy_imports() -> None:
    code = (
        "import io, sys, contextlib\n"
        "from butler.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "assert 'Register a graph' in out.getvalue(), out.getvalue()\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# -- the real console script ------------------------------------------------------------------------


def _script() -> str:
    found = shutil.which("butler", path=os.path.dirname(sys.executable)) or shutil.which("butler")
    if found is None:
        pytest.skip("butler console script not installed")
    return found


def test_console_script_end_to_end(tmp_path: Path, raws_csv: Path) -> None:
    butler_exe = _script()
    repo = tmp_path / "repo"
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump(dimension_data()))

    def call(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([butler_exe, *map(str, args)], capture_output=True, text=True, timeout=120)

    assert call("create", repo).returncode == 0
    assert call("insert-dimension-records", repo, records).returncode == 0
    assert (
        call("register-dataset-type", repo, "raw", "StructuredDataDict", "exposure", "detector").returncode
        == 0
    )
    ingest = call("ingest-files", repo, "raw", "Cam/raw/all", raws_csv, "--data-id", "instrument=Cam")
    assert ingest.returncode == 0, ingest.stderr
    query = call(
        "query-datasets",
        repo,
        "raw",
        "--collections",
        "Cam/raw/all",
        "--where",
        "exposure.exposure_time > 10",
    )
    assert query.returncode == 0 and len(query.stdout.splitlines()) == 2 + 2  # exposure 3, detectors 1 and 2

    missing = call("query-datasets", repo, "calexp", "--collections", "Cam/raw/all")
    assert missing.returncode == 1
    assert missing.stderr == "error: dataset type 'calexp' is not registered\n"
    assert missing.stdout == ""

    debug = call("--log-level", "DEBUG", "query-datasets", repo, "calexp", "--collections", "Cam/raw/all")
    assert debug.returncode == 1 and "Traceback" in debug.stderr

    syntax = call("query-datasets", repo, "raw", "--collections", "Cam/raw/all", "--where", "detector = = 1")
    assert syntax.returncode == 1 and syntax.stderr.startswith("error: ") and "^" in syntax.stderr
