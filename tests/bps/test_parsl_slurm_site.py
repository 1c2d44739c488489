"""The Parsl plugin's SLURM site settings: validated, and turned into the right Parsl objects.

No SLURM cluster here: the Parsl Config is built (nothing starts) and its provider inspected.
The shipped example, submit_configs/parsl_slurm_example.yaml, is loaded too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bps import BpsConfigError
from bps.config import SiteConfig, load_bps_config
from wms_plugins.parsl._runner import _parsl_config
from wms_plugins.parsl._site import ParslSiteSettings, SlurmSettings, site_settings
from wms_plugins.parsl._submit_dir import ParslLayout

REPO_ROOT = Path(__file__).resolve().parents[2]


def _site(settings: dict[str, Any]) -> SiteConfig:
    return SiteConfig("hpc", settings, {key: "/cfg/site.yaml" for key in settings})


SLURM = {
    "executor": "htex",
    "provider": "slurm",
    "partition": "normal",
    "account": "survey",
    "qos": "regular",
    "nodes": 2,
    "maxBlocks": 4,
    "walltime": "02:00:00",
    "maxWorkers": 32,
    "schedulerOptions": "#SBATCH --constraint=cpu",
    "workerInit": "source /opt/skybatch/bin/activate",
}


def test_slurm_settings_are_validated() -> None:
    settings = site_settings(_site(SLURM))
    assert settings.slurm == SlurmSettings(
        partition="normal",
        account="survey",
        qos="regular",
        nodes=2,
        max_blocks=4,
        walltime="02:00:00",
        scheduler_options="#SBATCH --constraint=cpu",
    )
    assert settings.address == "" and settings.max_workers == 32
    assert ParslSiteSettings.from_json(settings.to_json()) == settings
    assert site_settings(_site({})).slurm is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"partition": None}, r"site\.hpc\.partition: required with provider: slurm"),
        ({"walltime": "2h"}, r"walltime: expected HH:MM:SS"),
        ({"nodes": 0}, r"nodes: expected a positive integer"),
        ({"executor": "threads"}, r"provider: slurm needs executor: htex"),
        ({"provider": "pbs"}, r"provider: expected local or slurm"),
        ({"exclusive": "no"}, r"exclusive: expected true or false"),
        ({"partitoin": "x"}, r"partitoin: unknown key for the parsl plugin"),
    ],
)
def test_slurm_errors_name_key_and_file(change: dict[str, Any], message: str) -> None:
    settings = {**SLURM, **change}
    settings = {k: v for k, v in settings.items() if v is not None}
    with pytest.raises(BpsConfigError, match=message) as info:
        site_settings(_site(settings))
    assert "/cfg/site.yaml" in str(info.value) or "the submit config" in str(info.value)


def test_slurm_keys_without_the_slurm_provider_are_refused() -> None:
    with pytest.raises(BpsConfigError, match=r"partition: unknown key .*\(SLURM keys need provider: slurm\)"):
        site_settings(_site({"executor": "htex", "partition": "normal"}))


def test_parsl_objects(tmp_path: Path) -> None:
    from parsl.executors import HighThroughputExecutor
    from parsl.launchers import SingleNodeLauncher, SrunLauncher
    from parsl.providers import LocalProvider, SlurmProvider

    config = _parsl_config(site_settings(_site(SLURM)), ParslLayout(tmp_path), 0, None)
    (executor,) = config.executors
    assert isinstance(executor, HighThroughputExecutor)
    provider = executor.provider
    assert isinstance(provider, SlurmProvider) and isinstance(provider.launcher, SrunLauncher)
    assert (provider.partition, provider.account, provider.qos) == ("normal", "survey", "regular")
    assert (provider.nodes_per_block, provider.max_blocks, provider.walltime) == (2, 4, "02:00:00")
    assert "#SBATCH --constraint=cpu" in provider.scheduler_options
    assert provider.worker_init.strip() == "source /opt/skybatch/bin/activate"
    assert executor.max_workers_per_node == 32

    one_node = site_settings(_site({**SLURM, "nodes": 1}))
    provider = _parsl_config(one_node, ParslLayout(tmp_path), 0, None).executors[0].provider
    assert isinstance(provider, SlurmProvider) and isinstance(provider.launcher, SingleNodeLauncher)
    local = _parsl_config(site_settings(_site({"executor": "htex"})), ParslLayout(tmp_path), 0, None)
    assert isinstance(local.executors[0].provider, LocalProvider)


def test_shipped_slurm_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "repo").mkdir()
    example = REPO_ROOT / "submit_configs" / "parsl_slurm_example.yaml"
    config = load_bps_config(
        example,
        {"payload": {"butlerConfig": str(tmp_path / "repo")}},
        environ={"USER": "alice", "HOME": "/home/alice"},
    )
    assert config.wms_service_class == "parsl"
    settings = site_settings(config.site)
    assert settings.executor == "htex" and settings.slurm is not None and settings.slurm.partition
