"""Submit-config loading: layers, placeholders, environment, paths and every error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from bps_testutil import MINIMAL, NOW, TIMESTAMP, write_yaml

from bps.config import BpsConfigError, FinalJobWhen, JobResources, load_bps_config


def load(path: Path, env: dict[str, str], overrides: dict | None = None):
    return load_bps_config(path, overrides, now=NOW, environ=env)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        both_maps = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both_maps else value
    return out


def submit_yaml(cfg_dir: Path, extra: str = "", base: str = MINIMAL, name: str = "submit.yaml") -> Path:
    """``base`` with the keys of ``extra`` merged in (so ``extra`` may add to ``payload:``)."""
    data = _merge(yaml.safe_load(base) or {}, yaml.safe_load(extra) or {})
    return write_yaml(cfg_dir / name, yaml.safe_dump(data, sort_keys=False))


# -- defaults and overrides ------------------------------------------------------------------------
def test_defaults_fill_everything_not_given(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(submit_yaml(cfg_dir), env)
    assert cfg.operator == "alice"
    assert cfg.wms_service_class == "parsl"
    assert cfg.compute_site == "local"
    assert cfg.site.name == "local" and dict(cfg.site.settings) == {}
    assert cfg.resources == JobResources(request_memory=2048, request_cpus=1, number_of_retries=0)
    assert cfg.final_job.when_run is FinalJobWhen.ALWAYS and cfg.final_job.update_output_chain
    assert cfg.payload.output == "u/alice/demo"
    assert cfg.payload.output_run == f"u/alice/demo/{TIMESTAMP}"
    assert cfg.payload.in_collection == ("DemoCam/defaults",)
    assert cfg.payload.data_query == ""
    assert cfg.timestamp == TIMESTAMP
    assert cfg.uniq_proc_name == f"u_alice_demo_{TIMESTAMP}"
    # submitPath is relative to the working directory, and absolute once loaded.
    assert cfg.submit_path == Path.cwd() / "submit" / "u" / "alice" / "demo" / TIMESTAMP


def test_user_file_overrides_defaults(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        submit_yaml(
            cfg_dir,
            """
requestMemory: 4096
numberOfRetries: 3
submitPath: /scratch/{payloadName}/{timestamp}
finalJob: {whenRun: success, updateOutputChain: false}
""",
        ),
        env,
    )
    assert cfg.resources == JobResources(4096, 1, 3)
    assert cfg.submit_path == Path(f"/scratch/demo/{TIMESTAMP}")
    assert cfg.final_job.when_run is FinalJobWhen.SUCCESS
    assert not cfg.final_job.update_output_chain
    assert cfg.final_job.resources == JobResources(4096, 1, 3)


def test_per_task_resources_override_globals(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        submit_yaml(
            cfg_dir,
            """
requestMemory: 1000
pipetask:
  gather: {requestMemory: 8000, numberOfRetries: 2}
  isr:
""",
        ),
        env,
    )
    assert cfg.resources_for("gather") == JobResources(8000, 1, 2)
    assert cfg.resources_for("isr") == JobResources(1000, 1, 0)
    assert cfg.resources_for("other") == JobResources(1000, 1, 0)


def test_command_line_overrides_win_and_resolve_against_cwd(cfg_dir: Path, env: dict[str, str]) -> None:
    other_repo = Path.cwd() / "elsewhere"
    other_repo.mkdir()
    cfg = load(
        submit_yaml(cfg_dir),
        env,
        {
            "wmsServiceClass": "some.module.Service",
            "payload": {
                "butlerConfig": "elsewhere",
                "inCollection": ["a", "b"],
                "output": "u/x/{payloadName}",
            },
        },
    )
    assert cfg.wms_service_class == "some.module.Service"
    assert cfg.payload.butler_config == str(other_repo)
    assert cfg.payload.in_collection == ("a", "b")
    assert cfg.payload.output_run == f"u/x/demo/{TIMESTAMP}"


def test_collections_comma_separated(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(submit_yaml(cfg_dir, "payload: {inCollection: 'a/b, c/d'}\n"), env)
    assert cfg.payload.in_collection == ("a/b", "c/d")


# -- includeConfigs --------------------------------------------------------------------------------
def test_include_configs_merge_beneath_the_user_file(cfg_dir: Path, env: dict[str, str]) -> None:
    write_yaml(
        cfg_dir / "site" / "base.yaml",
        """
includeConfigs: [deeper.yaml]
requestMemory: 3000
requestCpus: 4
site: {local: {maxThreads: 8}}
""",
    )
    write_yaml(cfg_dir / "site" / "deeper.yaml", "requestCpus: 2\nnumberOfRetries: 5\nproject: deep\n")
    write_yaml(cfg_dir / "second.yaml", "project: second\n")
    cfg = load(
        submit_yaml(
            cfg_dir,
            """
includeConfigs: [site/base.yaml, second.yaml]
requestMemory: 1234
""",
        ),
        env,
    )
    assert cfg.resources == JobResources(1234, 4, 5)  # user > base > deeper
    assert cfg.project == "second"  # a later include wins over an earlier one
    assert cfg.site.settings == {"maxThreads": 8}
    assert [p.name for p in cfg.files] == ["deeper.yaml", "base.yaml", "second.yaml", "submit.yaml"]


def test_include_paths_relative_to_including_file_and_env(cfg_dir: Path, env: dict[str, str]) -> None:
    write_yaml(cfg_dir / "shared" / "campaign.yaml", "campaign: c1\n")
    env["SHARED"] = str(cfg_dir / "shared")
    cfg = load(submit_yaml(cfg_dir, "includeConfigs: ${SHARED}/campaign.yaml\n"), env)
    assert cfg.campaign == "c1"


def test_paths_in_an_include_resolve_against_that_include(cfg_dir: Path, env: dict[str, str]) -> None:
    write_yaml(cfg_dir / "pipelines" / "other.yaml", "tasks: {}\n")
    write_yaml(cfg_dir / "pipelines" / "inc.yaml", "pipelineYaml: other.yaml\n")
    base = MINIMAL.replace("pipelineYaml: pipeline.yaml\n", "")
    cfg = load(submit_yaml(cfg_dir, "includeConfigs: [pipelines/inc.yaml]\n", base=base), env)
    assert cfg.pipeline_yaml == cfg_dir / "pipelines" / "other.yaml"


def test_include_cycle_is_an_error(cfg_dir: Path, env: dict[str, str]) -> None:
    write_yaml(cfg_dir / "a.yaml", "includeConfigs: [b.yaml]\n")
    write_yaml(cfg_dir / "b.yaml", "includeConfigs: [a.yaml]\n")
    with pytest.raises(BpsConfigError, match=r"includeConfigs cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load(submit_yaml(cfg_dir, "includeConfigs: [a.yaml]\n"), env)


def test_missing_include_is_an_error(cfg_dir: Path, env: dict[str, str]) -> None:
    with pytest.raises(BpsConfigError, match="config file not found: .*nope.yaml"):
        load(submit_yaml(cfg_dir, "includeConfigs: [nope.yaml]\n"), env)


def test_include_with_placeholder_is_an_error(cfg_dir: Path, env: dict[str, str]) -> None:
    with pytest.raises(BpsConfigError, match=r"includeConfigs\[0\].*only \$\{ENV\}"):
        load(submit_yaml(cfg_dir, "includeConfigs: ['{operator}.yaml']\n"), env)


# -- placeholders and environment ------------------------------------------------------------------
def test_placeholder_lookup_order(cfg_dir: Path, env: dict[str, str]) -> None:
    env["FROM_ENV"] = "e"
    cfg = load(
        submit_yaml(
            cfg_dir,
            """
vars: {tag: w42, size: 4096}
project: "p-{tag}"
campaign: "{FROM_ENV}-{payloadName}-{uniqProcName}"
requestMemory: "{size}"
payload:
  output: "u/{operator}/{tag}"
  dataQuery: "exposure = {{not a placeholder}} AND cost = $$5"
""",
        ),
        env,
    )
    assert cfg.project == "p-w42"  # a leaf found elsewhere in the tree (vars.tag)
    assert cfg.payload.output == "u/alice/w42"
    assert cfg.payload.output_run == f"u/alice/w42/{TIMESTAMP}"  # sibling lookup inside payload
    assert cfg.campaign == f"e-demo-u_alice_w42_{TIMESTAMP}"  # environment, nested leaf, built-in
    assert cfg.resources.request_memory == 4096  # a placeholder-only value still converts to int
    assert cfg.payload.data_query == "exposure = {not a placeholder} AND cost = $5"
    assert cfg.variables == {"tag": "w42", "size": 4096}


def test_enclosing_scope_wins_over_other_leaves(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        submit_yaml(
            cfg_dir,
            """
site:
  local: {executor: threads, label: "{executor}-x"}
vars: {executor: htex}
""",
        ),
        env,
    )
    assert cfg.site.settings["label"] == "threads-x"


def test_env_expansion_and_fallback(cfg_dir: Path, env: dict[str, str]) -> None:
    env["SCRATCH"] = "/scratch"
    cfg = load(submit_yaml(cfg_dir, 'submitPath: "${SCRATCH}/${SUBDIR:-bps}/{outputRun}"\n'), env)
    assert cfg.submit_path == Path(f"/scratch/bps/u/alice/demo/{TIMESTAMP}")


def test_user_missing_from_environment_falls_back_to_login_name(cfg_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("USER", raising=False)
    cfg = load_bps_config(submit_yaml(cfg_dir), now=NOW)
    assert cfg.operator  # from the password database, not an error


def test_timestamp_is_utc_and_fixed_once(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load_bps_config(submit_yaml(cfg_dir, "project: '{timestamp}'\n"), environ=env)
    assert cfg.project == cfg.timestamp and cfg.payload.output_run.endswith(cfg.timestamp)
    assert len(cfg.timestamp) == 16 and cfg.timestamp[8] == "T" and cfg.timestamp.endswith("Z")


# -- paths -----------------------------------------------------------------------------------------
def test_relative_paths_resolve_against_the_submit_yaml(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(submit_yaml(cfg_dir), env)
    assert cfg.pipeline_yaml == cfg_dir / "pipeline.yaml"
    assert cfg.payload.butler_config == str(cfg_dir.parent / "repo")
    assert cfg.submit_yaml == cfg_dir / "submit.yaml"
    assert cfg.resolved["pipelineYaml"] == str(cfg_dir / "pipeline.yaml")
    assert cfg.resolved["payload"]["butlerConfig"] == str(cfg_dir.parent / "repo")


def test_butler_uri_is_kept_as_written(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(submit_yaml(cfg_dir, "payload: {butlerConfig: 's3://bucket/repo'}\n"), env)
    assert cfg.payload.butler_config == "s3://bucket/repo"


def test_qgraph_file_makes_pipeline_and_inputs_optional(cfg_dir: Path, env: dict[str, str]) -> None:
    (cfg_dir / "g.qgraph").write_bytes(b"x")
    cfg = load(
        submit_yaml(
            cfg_dir,
            base="""
qgraphFile: g.qgraph
payload: {payloadName: demo, butlerConfig: ../repo, output: u/x}
""",
        ),
        env,
    )
    assert cfg.qgraph_file == cfg_dir / "g.qgraph"
    assert cfg.pipeline_yaml is None and cfg.payload.in_collection == ()


# -- errors: each names the key path and the file --------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (
            "requestMemroy: 10\n",
            r"requestMemroy: unknown key \(in .*submit\.yaml\); did you mean 'requestMemory'",
        ),
        (
            "payload: {inCollections: x}\n",
            r"payload\.inCollections: unknown key \(in .*submit\.yaml\); did you mean 'inCollection'",
        ),
        (
            "pipetask: {isr: {requestMemroy: 1}}\n",
            r"pipetask\.isr\.requestMemroy: unknown key.*'requestMemory'",
        ),
        ("finalJob: {when: ALWAYS}\n", r"finalJob\.when: unknown key.*did you mean 'whenRun'"),
        ("payload: [1, 2]\n", r"payload: expected a mapping of keys, got a list \(in .*submit\.yaml\)"),
        (
            "requestMemory: lots\n",
            r"requestMemory: expected an integer, got a string 'lots' \(in .*submit\.yaml\)",
        ),
        ("requestCpus: 0\n", r"requestCpus: must be at least 1, got 0"),
        ("numberOfRetries: true\n", r"numberOfRetries: expected an integer, got a boolean"),
        ("project: [a]\n", r"project: expected a string, got a list"),
        ("operator: [a]\n", r"payload\.output: placeholder \{operator\} refers to operator, which is a list"),
        ("finalJob: {whenRun: sometimes}\n", r"finalJob\.whenRun: expected one of ALWAYS, SUCCESS, NEVER"),
        ("finalJob: {updateOutputChain: 3}\n", r"finalJob\.updateOutputChain: expected true or false"),
        ("project: '{nosuchkey}'\n", r"project: unresolved placeholder \{nosuchkey\}.*\(in .*submit\.yaml\)"),
        (
            "project: '{campaign}'\ncampaign: '{project}'\n",
            r"placeholder cycle: project -> campaign -> project",
        ),
        ("project: '{site}'\n", r"project: placeholder \{site\} refers to site, which is a mapping"),
        ("project: '${NOT_SET_ANYWHERE}'\n", r"project: environment variable NOT_SET_ANYWHERE is not set"),
        (
            "finalJob: {x: 1}\nvars: {x: 2}\nproject: '{x}'\n",
            r"project: placeholder \{x\} is ambiguous: it could mean any of finalJob\.x, vars\.x",
        ),
        ("vars: {timestamp: now}\n", r"vars\.timestamp: \{timestamp\} is computed by bps"),
        (
            "payload: {butlerConfig: ../missing_repo}\n",
            r"payload\.butlerConfig: no such file or directory: .*missing_repo",
        ),
        (
            "pipelineYaml: nope.yaml\n",
            r"pipelineYaml: no such file or directory: .*nope\.yaml \(in .*submit\.yaml\)",
        ),
        ("payload: {inCollection: []}\n", r"payload\.inCollection: names no collection"),
        ("1: x\n", r"key 1 must be a string \(in .*submit\.yaml\)"),
    ],
)
def test_errors_name_key_and_file(cfg_dir: Path, env: dict[str, str], extra: str, pattern: str) -> None:
    with pytest.raises(BpsConfigError, match=pattern):
        load(submit_yaml(cfg_dir, extra), env)


def test_missing_required_key(cfg_dir: Path, env: dict[str, str]) -> None:
    path = submit_yaml(cfg_dir, base="pipelineYaml: pipeline.yaml\npayload: {payloadName: x, output: o}\n")
    pattern = r"missing required key payload\.butlerConfig: set it in .*submit\.yaml"
    with pytest.raises(BpsConfigError, match=pattern):
        load(path, env)


def test_error_in_an_include_names_the_include(cfg_dir: Path, env: dict[str, str]) -> None:
    write_yaml(cfg_dir / "inc.yaml", "requestCpus: many\n")
    with pytest.raises(BpsConfigError, match=r"requestCpus: expected an integer.*\(in .*inc\.yaml\)"):
        load(submit_yaml(cfg_dir, "includeConfigs: [inc.yaml]\n"), env)


def test_error_in_a_default_names_the_defaults(cfg_dir: Path) -> None:
    pattern = r"operator: environment variable USER is not set \(in bps defaults"
    with pytest.raises(BpsConfigError, match=pattern):
        load_bps_config(submit_yaml(cfg_dir), now=NOW, environ={})


def test_invalid_yaml_names_file_and_line(cfg_dir: Path, env: dict[str, str]) -> None:
    path = write_yaml(cfg_dir / "bad.yaml", "a: 1\nb: [unclosed\n")
    with pytest.raises(BpsConfigError, match=r"bad\.yaml: invalid YAML at line \d+"):
        load(path, env)


def test_duplicate_keys_are_an_error(cfg_dir: Path, env: dict[str, str]) -> None:
    path = write_yaml(cfg_dir / "dup.yaml", MINIMAL + "payload: {dataQuery: x}\n")
    pattern = r"dup\.yaml: invalid YAML at line 7, column 1: duplicate key 'payload'"
    with pytest.raises(BpsConfigError, match=pattern):
        load(path, env)


def test_top_level_must_be_a_mapping(cfg_dir: Path, env: dict[str, str]) -> None:
    path = write_yaml(cfg_dir / "list.yaml", "- a\n- b\n")
    with pytest.raises(BpsConfigError, match=r"list\.yaml: the top level must be a mapping"):
        load(path, env)


def test_yaml_is_data_never_code(cfg_dir: Path, env: dict[str, str]) -> None:
    evil = "project: !!python/object/apply:os.system ['echo pwned']\n"
    path = write_yaml(cfg_dir / "evil.yaml", MINIMAL + evil)
    with pytest.raises(BpsConfigError, match="invalid YAML"):
        load(path, env)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(BpsConfigError, ValueError)


# -- resources and retries -------------------------------------------------------------------------
def test_resource_and_retry_keys_at_every_level(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        submit_yaml(
            cfg_dir,
            """
requestDisk: 100
requestWalltime: 3600
retryUnlessExit: 2
memoryMultiplier: 2
pipetask:
  isr: {retryUnlessExit: [4, 3, 4], memoryLimit: 9000, requestWalltime: "60"}
  calibrate: {retryUnlessExit: [], memoryMultiplier: 1.5}
finalJob: {requestDisk: 0, memoryMultiplier: 1.1}
""",
        ),
        env,
    )
    top = cfg.resources
    assert (top.request_disk, top.request_walltime, top.retry_unless_exit) == (100, 3600, (2,))
    assert (top.memory_multiplier, top.memory_limit, top.effective_memory_limit()) == (2.0, None, 4 * 2048)
    isr = cfg.resources_for("isr")
    assert (isr.retry_unless_exit, isr.memory_limit, isr.request_walltime) == ((3, 4), 9000, 60)
    assert isr.effective_memory_limit() == 9000
    calibrate = cfg.resources_for("calibrate")
    assert calibrate.retry_unless_exit == () and calibrate.memory_multiplier == 1.5  # [] clears the codes
    final = cfg.final_job.resources
    assert (final.request_disk, final.memory_multiplier, final.request_walltime) == (0, 1.1, 3600)
    assert cfg.clustering.algorithm == "single" and not cfg.clustering.clusters
    assert JobResources(1, 1, 0).effective_memory_limit() is None  # no multiplier: no limit


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ("requestDisk: -1\n", r"requestDisk: must be at least 0, got -1"),
        ("requestWalltime: 0\n", r"requestWalltime: must be at least 1, got 0"),
        ("requestWalltime: 1h\n", r"requestWalltime: expected an integer, got a string '1h'"),
        ("memoryMultiplier: lots\n", r"memoryMultiplier: expected a number, got a string 'lots'"),
        ("memoryMultiplier: true\n", r"memoryMultiplier: expected a number, got a boolean"),
        ("memoryLimit: 1000\n", r"memoryLimit: memoryLimit \(1000 MB\) is below requestMemory \(2048 MB\)"),
        (
            "memoryLimit: 3000\npipetask: {gather: {requestMemory: 4000}}\n",
            r"pipetask\.gather\.requestMemory: memoryLimit \(3000 MB\) is below requestMemory \(4000 MB\)",
        ),
        ("retryUnlessExit: 0\n", r"retryUnlessExit: exit codes are 1 to 255, got 0"),
        ("retryUnlessExit: [1, x]\n", r"retryUnlessExit\[1\]: expected an exit code \(an integer\)"),
        ("retryUnlessExit: {a: 1}\n", r"retryUnlessExit: expected an exit code"),
        ("pipetask: {isr: {requestDisk: big}}\n", r"pipetask\.isr\.requestDisk: expected an integer"),
        (
            "jobLocalDatasetTypes: {a: 1}\n",
            r"jobLocalDatasetTypes: expected a comma-separated string or a list",
        ),
        ("cluster: {c: {requestCpus: 0}}\n", r"cluster\.c\.requestCpus: must be at least 1, got 0"),
    ],
)
def test_resource_errors_name_key_and_file(
    cfg_dir: Path, env: dict[str, str], extra: str, pattern: str
) -> None:
    with pytest.raises(BpsConfigError, match=pattern + r".*\(in .*submit\.yaml\)"):
        load(submit_yaml(cfg_dir, extra), env)


def test_cluster_entries(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        submit_yaml(
            cfg_dir,
            """
clusterAlgorithm: Dimension
jobLocalDatasetTypes: postISR, tmp
cluster:
  perChip: {pipetasks: "isr, calibrate", dimensions: [exposure, detector], requestMemory: 3000}
  perExposure: {pipetasks: [gather], dimensions: exposure}
""",
        ),
        env,
    )
    clustering = cfg.clustering
    assert clustering.algorithm == "dimension" and clustering.job_local_dataset_types == ("postISR", "tmp")
    chip = clustering.clusters["perChip"]
    assert (chip.pipetasks, chip.dimensions) == (("isr", "calibrate"), ("exposure", "detector"))
    assert chip.resources.request_memory == 3000 and chip.resources.request_cpus is None
    assert clustering.clusters["perExposure"].resources.is_empty
    assert str(chip.sources["requestMemory"]).endswith("submit.yaml")
