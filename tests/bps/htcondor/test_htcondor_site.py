"""The htcondor plugin's site settings: validated on load, errors name the key and the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bps import BpsConfigError
from bps.config import SiteConfig, load_bps_config
from wms_plugins.htcondor import HTCondorSiteSettings
from wms_plugins.htcondor._site import site_settings


def _site(settings: dict[str, Any]) -> SiteConfig:
    return SiteConfig("pool", settings, {key: "/cfg/site.yaml" for key in settings})


def test_defaults() -> None:
    settings = site_settings(_site({}))
    assert settings == HTCondorSiteSettings()
    assert (settings.getenv, settings.max_idle, settings.max_jobs, settings.node_status_interval) == (
        "true",
        1000,
        0,
        10,
    )


def test_every_key() -> None:
    settings = site_settings(
        _site(
            {
                "requirements": '(OpSys == "LINUX")',
                "accountingGroup": "group_survey.prod",
                "accountingUser": "svc",
                "submitCommands": {"+ProjectName": '"survey"', "rank": "Memory", "priority": 5},
                "getenv": ["PATH", "HOME"],
                "environment": {"OMP_NUM_THREADS": 1},
                "maxIdle": "50",
                "maxJobs": 100,
                "dagmanConfig": {"DAGMAN_USER_LOG_SCAN_INTERVAL": 1},
                "nodeStatusInterval": 2,
                "batchName": "dr1",
                "schedd": "sched1.example",
                "enforceMemory": True,
            }
        )
    )
    assert settings.submit_commands == (("+ProjectName", '"survey"'), ("rank", "Memory"), ("priority", "5"))
    assert settings.getenv == "PATH, HOME" and settings.environment == (("OMP_NUM_THREADS", "1"),)
    assert (settings.max_idle, settings.max_jobs, settings.enforce_memory) == (50, 100, True)
    assert HTCondorSiteSettings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"maxIdel": 5}, r"site\.pool\.maxIdel: unknown key for the htcondor plugin.*\(in /cfg/site\.yaml\)"),
        ({"maxIdle": -1}, r"site\.pool\.maxIdle: expected an integer of at least 0"),
        ({"nodeStatusInterval": 0}, r"nodeStatusInterval: expected an integer of at least 1"),
        ({"requirements": ["a"]}, r"requirements: expected a string"),
        ({"requirements": "a\nb"}, r"requirements: must be a single line"),
        (
            {"submitCommands": {"executable": "/bin/x"}},
            r"submitCommands\.executable: is written by the htcondor plugin",
        ),
        ({"submitCommands": {"bad key": "x"}}, r"submitCommands\.bad key: not a valid submit command"),
        ({"submitCommands": "rank = 1"}, r"submitCommands: expected a mapping"),
        ({"environment": {"A": "it's"}}, r"environment\.A: values must not contain quotes"),
        ({"getenv": 3}, r"getenv: expected true, false or a list"),
        ({"enforceMemory": "yes"}, r"enforceMemory: expected true or false"),
    ],
)
def test_errors_name_key_and_file(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(BpsConfigError, match=message):
        site_settings(_site(settings))


def test_shipped_htcondor_example_loads(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    example = Path(__file__).resolve().parents[3] / "submit_configs" / "htcondor_example.yaml"
    config = load_bps_config(
        example,
        {"payload": {"butlerConfig": str(tmp_path / "repo")}},
        environ={"USER": "alice", "HOME": "/h"},
    )
    assert config.wms_service_class == "htcondor"
    settings = site_settings(config.site)
    assert settings.accounting_group == "group_survey.prod" and "OpSys" in settings.requirements
    assert config.resources.memory_multiplier == 2 and config.resources.retry_unless_exit == (2,)


def test_lsst_profile_accounting_and_wms_config() -> None:
    """LSST's keys: profile.condor.* (site, else top level), accountingGroup/User, wmsConfig."""
    from wms_plugins.htcondor._site import lsst_site

    site = SiteConfig(
        "acsws02",
        {
            "profile": {
                "condor": {
                    "requirements": "(ALLOCATED_NODE_SET == &quot;ns1&quot;)",
                    "+JOB_NODE_SET": '"ns1"',
                }
            },
            "accountingUser": "site-user",
        },
        {"": "/cfg/site.yaml"},
    )
    top = {
        "accountingGroup": "group_survey",
        "accountingUser": "top-user",
        "wmsConfig": {"DAGMAN_GENERATE_SUBDAG_SUBMITS": True},
    }
    settings = site_settings(lsst_site(site, top))
    assert settings.requirements == '(ALLOCATED_NODE_SET == "ns1")'
    assert settings.submit_commands == (("+JOB_NODE_SET", '"ns1"'),)
    assert (settings.accounting_group, settings.accounting_user) == ("group_survey", "site-user")
    assert settings.dagman_config == (("DAGMAN_GENERATE_SUBDAG_SUBMITS", "true"),)
