"""A full disk is a clear error naming the dataset, the file and "no space left"; nothing half-registered.

The datastore lives on a real 3 MiB tmpfs (mounted by the test, so only where it runs as root
and ``mount`` works; skipped with the reason elsewhere) and a 4 MiB array is put into it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from butler import Butler, DatastoreError, DatastoreFullError
from quantumgraph.cli import main as pipetask_main
from quantumgraph.demo.repo import insert_demo_dimension_records, put_demo_raws, register_demo_collections


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs mounted for this test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_put_on_a_full_disk(tmp_path: Path, small_disk: Path) -> None:
    root = tmp_path / "repo"
    Butler.create(root).close()
    config = root / "butler.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["datastore"]["root"] = str(small_disk)
    config.write_text(yaml.safe_dump(settings))
    with Butler(root) as butler:
        butler.registry.insert_dimension_data({"instrument": [{"name": "Cam"}]})
        butler.register_dataset_type("image", ("instrument",), "NumpyArray")
        small = butler.put(np.zeros(1000), "image", run="u/ok", instrument="Cam")
        with pytest.raises(DatastoreFullError) as info:
            butler.put(np.ones(512 * 1024), "image", run="u/full", instrument="Cam")  # 4 MiB
        message = str(info.value)
        assert "no space left" in message
        assert "image" in message and "u/full" in message and str(small_disk) in message
        assert isinstance(info.value, DatastoreError) and isinstance(info.value, OSError)
        # Nothing half-done: no dataset registered, no file or temporary left; the earlier one reads.
        assert "u/full" not in dict(butler.registry.query_collections())
        assert not list(small_disk.rglob("u/full/**/*.npy")) and not list(small_disk.rglob(".tmp-*"))
        assert butler.get(small).shape == (1000,)


PIPELINE = """\
tasks:
  isr: quantumgraph.demo.tasks.Isr
  big: faults_tasks.BigImage
"""


def test_quantum_on_a_full_disk_names_quantum_dataset_and_path(tmp_path: Path, small_disk: Path) -> None:
    """The datastore (the repository directory) is on the small disk, its registry is not."""
    repo = small_disk / "repo"
    with Butler.create(repo, db_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}") as butler:
        insert_demo_dimension_records(butler, 1, 1)
        register_demo_collections(butler)
        put_demo_raws(butler, 1, 1)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE)
    args = ["run", "-b", str(repo), "-i", "DemoCam/defaults", "-o", "u/full", "-p", str(pipeline)]
    result = CliRunner().invoke(pipetask_main, args)
    assert result.exit_code != 0
    err = result.stderr
    assert "quantum" in err and "big" in err and "no space left" in err
    assert "image" in err and str(repo) in err
    assert "requested and" in err  # the system's own words stay, after ours
