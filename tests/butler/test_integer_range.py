"""Integers that do not fit the registry's 64-bit columns are a clear error, never an OverflowError.

Dimension keys and integer metadata are stored as BIGINT (signed 64 bits) on both databases; a
value of 2**63 or more reached the driver and ended in an OverflowError traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from butler_testdata import dimension_data
from click.testing import CliRunner

from butler import Butler, DimensionRecordError, InvalidDataIdError
from butler.cli import main

TOO_BIG = (2**63, 2**70, -(2**63) - 1)


@pytest.fixture
def butler(tmp_path: Path, db_url: str) -> Iterator[Butler]:
    with Butler.create(tmp_path / "repo", db_url=db_url) as b:
        b.registry.insert_dimension_data(dimension_data())
        b.register_dataset_type("raw", ("exposure", "detector"), "StructuredDataDict")
        yield b


@pytest.mark.parametrize("value", TOO_BIG)
def test_put_with_huge_data_id_value(butler: Butler, value: int) -> None:
    with pytest.raises(InvalidDataIdError, match=rf"exposure={value} is out of range: .*fit in 64 bits"):
        butler.put({"a": 1}, "raw", run="r", instrument="Cam", exposure=value, detector=1)
    assert butler.registry.query_collections() == []


def test_data_id_values_at_the_limits_are_accepted(butler: Butler) -> None:
    for value in (2**63 - 1, -(2**63)):
        with pytest.raises(Exception) as info:
            butler.put({"a": 1}, "raw", run="r", instrument="Cam", exposure=value, detector=1)
        assert "is not a registered value" in str(info.value)  # in range: only unknown


@pytest.mark.parametrize("value", TOO_BIG)
def test_dimension_record_with_huge_key_or_metadata(butler: Butler, value: int) -> None:
    with pytest.raises(DimensionRecordError, match=r"detector record: .*out of range"):
        butler.registry.insert_dimension_records("detector", [{"instrument": "Cam", "id": value}])
    exposure = dict(dimension_data()["exposure"][0], id=99, seq_num=value)
    with pytest.raises(DimensionRecordError, match=r"exposure record: field seq_num=.* is out of range"):
        butler.registry.insert_dimension_records("exposure", [exposure])


def test_cli_records_and_ingest_with_huge_integers(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    runner = CliRunner()
    assert runner.invoke(main, ["create", str(repo)]).exit_code == 0
    data = dimension_data()
    data["detector"].append({"instrument": "Cam", "id": 2**64, "full_name": "S99"})
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump(data))
    result = runner.invoke(main, ["insert-dimension-records", str(repo), str(records)])
    assert result.exit_code == 1, result.output
    assert "out of range" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    data["detector"].pop()
    records.write_text(yaml.safe_dump(data))
    assert runner.invoke(main, ["insert-dimension-records", str(repo), str(records)]).exit_code == 0
    args = ["register-dataset-type", str(repo), "raw", "StructuredDataDict", "exposure", "detector"]
    assert runner.invoke(main, args).exit_code == 0
    (tmp_path / "f.yaml").write_text("a: 1\n")
    table = tmp_path / "raws.csv"
    table.write_text(f"path,exposure,detector\nf.yaml,{2**70},1\n")
    ingest = runner.invoke(
        main,
        [
            "ingest-files",
            str(repo),
            "raw",
            "r",
            str(table),
            "--data-id",
            "instrument=Cam",
            "--prefix",
            str(tmp_path),
        ],
    )
    assert ingest.exit_code == 1, ingest.output
    assert f"exposure={2**70} is out of range" in ingest.stderr and "Traceback" not in ingest.stderr
