"""LSST's submit-YAML semantics: lookup order, free-form variables, defaults, command templates.

Each test writes the YAML an LSST operator would and checks the value LSST's documentation gives.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from bps_testutil import MINIMAL, NOW, TIMESTAMP, write_yaml

from bps.config import BpsConfigError, load_bps_config
from bps.workflow._templates import JobCommands


def load(cfg_dir: Path, env: dict[str, str], text: str, base: str = MINIMAL):
    return load_bps_config(write_yaml(cfg_dir / "submit.yaml", base + text), now=NOW, environ=env)


def test_payload_output_defaults_to_lsst_one(cfg_dir: Path, env: dict[str, str]) -> None:
    base = "pipelineYaml: pipeline.yaml\n"
    base += "payload: {payloadName: pcheck, butlerConfig: ../repo, inCollection: a}\n"
    cfg = load(cfg_dir, env, "", base=base)
    assert cfg.payload.output == "u/alice/pcheck"
    assert cfg.payload.output_run == f"u/alice/pcheck/{TIMESTAMP}"


def test_lookup_order_job_section_then_payload_then_top(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        cfg_dir,
        env,
        """
var1: root
runQuantumCommand: "pipetask run-qbb {butlerConfig} {qgraphFile} --qgraph-node-id {qgraphNodeId} {var1}"
pipetask:
  isr: {var1: isr_value}
cluster:
  perChip: {pipetasks: calibrate, var1: cluster_value}
finalJob:
  var1: final_value
  command1: "echo {var1} {payloadName}"
""",
    )
    assert cfg.commands is not None
    assert cfg.commands.quantum_template("isr").endswith(" isr_value")
    assert cfg.commands.quantum_template("perChip").endswith(" cluster_value")
    assert cfg.commands.quantum_template("gather").endswith(" root")
    assert cfg.final_job.commands == ("echo final_value demo",)


def test_format_spec_and_free_form_variable(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(cfg_dir, env, "patch: 69\nproject: 'p{patch:04}'\n")
    assert cfg.project == "p0069"
    assert not cfg.warnings  # patch is used: a variable, no warning


def test_unknown_keys_typo_is_error_unused_variable_warns(cfg_dir: Path, env: dict[str, str]) -> None:
    with pytest.raises(BpsConfigError, match=r"requestMemroy: unknown key .*did you mean 'requestMemory'"):
        load(cfg_dir, env, "requestMemroy: 1\n")
    cfg = load(cfg_dir, env, "mySetting: 3\n")
    assert cfg.warnings == (
        f"mySetting: not a key bps knows and no {{placeholder}} uses it; kept as a free-form variable "
        f"(in {cfg_dir / 'submit.yaml'})",
    )


def test_memory_multiplier_one_turns_scaling_off(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        cfg_dir,
        env,
        "memoryMultiplier: 2\nnumberOfRetries: 3\npipetask: {isr: {memoryMultiplier: 1}}\n"
        "finalJob: {memoryMultiplier: 0.5}\n",
    )
    assert cfg.resources.memory_multiplier == 2.0 and cfg.resources.number_of_retries == 3
    assert cfg.resources_for("isr").memory_multiplier is None
    assert cfg.final_job.resources.memory_multiplier is None


def test_request_memory_max_caps_scaling_and_memory_limit_caps_it(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(cfg_dir, env, "memoryMultiplier: 2\nrequestMemoryMax: 8000\nwmsServiceClass: htcondor\n")
    assert cfg.resources.effective_memory_limit() == 8000
    assert cfg.resources.number_of_retries == 5  # LSST's default once memoryMultiplier is set
    cfg = load(cfg_dir, env, "memoryMultiplier: 2\nrequestMemoryMax: 8000\nmemoryLimit: 6000\n")
    assert cfg.resources.effective_memory_limit() == 6000  # memoryLimit wins when smaller


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ("memoryMultiplier: 2\nnumberOfRetries: 0\nwmsServiceClass: htcondor\n", "numberOfRetries is 0"),
        ("memoryMultiplier: 2\nnumberOfRetries: 2\n", "the parsl plugin neither limits"),
        (
            "memoryMultiplier: 2\nrequestMemoryMax: 1000\nwmsServiceClass: htcondor\n",
            "requestMemoryMax/memoryLimit do not exceed requestMemory",
        ),
    ],
)
def test_memory_multiplier_that_cannot_take_effect_warns(
    cfg_dir: Path, env: dict[str, str], extra: str, why: str
) -> None:
    cfg = load(cfg_dir, env, extra)
    found = [w for w in cfg.warnings if "memoryMultiplier" in w]
    assert len(found) == 1 and found[0].startswith(
        f"memoryMultiplier is set but can never take effect: {why}"
    )


@pytest.mark.parametrize(
    ("value", "expected"), [("'--update-output-chain'", True), ("''", False), ("false", False)]
)
def test_update_output_chain_as_lsst_string(
    cfg_dir: Path, env: dict[str, str], value: str, expected: bool
) -> None:
    cfg = load(cfg_dir, env, f"finalJob: {{updateOutputChain: {value}}}\n")
    assert cfg.final_job.update_output_chain is expected


@pytest.mark.parametrize(
    ("name", "plugin"),
    [
        ("lsst.ctrl.bps.htcondor.HTCondorService", "htcondor"),
        ("lsst.ctrl.bps.parsl.ParslService", "parsl"),
        ("lsst.ctrl.bps.wms.htcondor.htcondor_service.HTCondorService", "htcondor"),
    ],
)
def test_lsst_wms_service_class_selects_our_plugin(
    cfg_dir: Path, env: dict[str, str], name: str, plugin: str
) -> None:
    assert load(cfg_dir, env, f"wmsServiceClass: {name}\n").wms_service_class == plugin


def test_accepted_keys_warn_once_each(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        cfg_dir,
        env,
        "executionButler: {whenCreate: SUBMIT, whenMerge: ALWAYS}\nwhenSaveJobQgraph: TRANSFORM\n"
        "bpsUseShared: true\nsaveClusteredQgraph: false\n",
    )
    keys = [w.split(":")[0] for w in cfg.warnings]
    assert keys == ["executionButler", "whenSaveJobQgraph"]  # true/false values LSST also means: silent
    assert "quantum-backed butler" in cfg.warnings[0] and "(LSST's NEVER)" in cfg.warnings[1]


def test_compute_site_without_site_entry(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(cfg_dir, env, "computeSite: ncsapool\n")
    assert cfg.compute_site == "ncsapool" and dict(cfg.site.settings) == {}
    assert not cfg.warnings  # no site of the operator's: nothing to have mistyped
    cfg = load(cfg_dir, env, "computeSite: ncsapool\nsite: {pool: {}}\n")
    assert [w.split(" (in")[0] for w in cfg.warnings] == [
        "computeSite: site 'ncsapool' has no entry under site: (defined: pool); "
        "the plugin's defaults are used"
    ]


def test_templates_splice_options_and_keep_runtime_variables(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        cfg_dir,
        env,
        """
defaultPreCmdOpts: "--log-level=DEBUG"
extraRunQuantumOptions: "--clobber-outputs"
runQuantumCommand: >-
  ${CTRL_MPEXEC_DIR}/bin/pipetask {runPreCmdOpts} run-qbb {butlerConfig} {qgraphFile}
  --qgraph-node-id {qgraphNodeId} {extraRunQuantumOptions} --x ${NOT_SET_AT_SUBMIT}
""",
    )
    assert cfg.commands is not None
    template = cfg.commands.quantum_template("isr")
    repo = cfg.payload.butler_config
    assert template == (
        f"${{CTRL_MPEXEC_DIR}}/bin/pipetask --log-level=DEBUG run-qbb {repo} {{qgraphFile}} "
        "--qgraph-node-id {qgraphNodeId} --clobber-outputs --x ${NOT_SET_AT_SUBMIT}"
    )
    a, b = uuid.uuid4(), uuid.uuid4()
    commands = JobCommands(cfg.commands.run_quantum, cfg.commands.init, (), "/s/g.qgraph", "1f")
    argv = commands.quantum("isr_1", "isr", (a, b), job_local=("postISR",))
    assert argv == [
        "pipetask",
        "--log-level=DEBUG",
        "run-qbb",
        repo,
        "/s/g.qgraph",
        "--qgraph-node-id",
        f"{a},{b}",
        "--clobber-outputs",
        "--x",
        "${NOT_SET_AT_SUBMIT}",
        "--job-local",
        "postISR",
    ]
    # The init job gets the default pipetaskInit template with the same pre-command options.
    assert commands.init("pipetaskInit", "pipetaskInit") == [
        "pipetask",
        "--log-level=DEBUG",
        "pre-exec-init-qbb",
        repo,
        "/s/g.qgraph",
    ]


def test_no_operator_templates_keeps_bps_commands(cfg_dir: Path, env: dict[str, str]) -> None:
    assert load(cfg_dir, env, "").commands is None


def test_environment_merges_job_sections_over_top(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        cfg_dir,
        env,
        """
var1: root_val
environment:
  A: "{var1}"
  B: "${HOME}/b"
  C: "${NOT_SET_AT_SUBMIT}/c"
pipetask:
  isr:
    var1: isr_val
    environment: {B: isr_b}
finalJob:
  environment: {D: "4"}
""",
    )
    assert dict(cfg.environment_for("calibrate")) == {
        "A": "root_val",
        "B": "/home/alice/b",
        "C": "${NOT_SET_AT_SUBMIT}/c",
    }
    assert dict(cfg.environment_for("isr")) == {"A": "isr_val", "B": "isr_b", "C": "${NOT_SET_AT_SUBMIT}/c"}
    assert dict(cfg.environment_for("finalJob")) == {
        "A": "root_val",
        "B": "/home/alice/b",
        "C": "${NOT_SET_AT_SUBMIT}/c",
        "D": "4",
    }


def test_environment_errors(cfg_dir: Path, env: dict[str, str]) -> None:
    with pytest.raises(BpsConfigError, match=r"environment\.1X: not a valid environment variable name"):
        load(cfg_dir, env, "environment: {1X: a}\n")
    with pytest.raises(BpsConfigError, match=r"environment\.X: expected a single value, got a list"):
        load(cfg_dir, env, "environment: {X: [a]}\n")


def test_bps_wms_service_class_environment_beats_the_default_only(cfg_dir: Path, env: dict[str, str]) -> None:
    shell = {**env, "BPS_WMS_SERVICE_CLASS": "lsst.ctrl.bps.htcondor.HTCondorService"}
    assert load(cfg_dir, shell, "").wms_service_class == "htcondor"
    assert load(cfg_dir, shell, "wmsServiceClass: parsl\n").wms_service_class == "parsl"


def test_job_level_keys_applied_per_site_warn(cfg_dir: Path, env: dict[str, str]) -> None:
    cfg = load(
        cfg_dir,
        env,
        "pipetask: {isr: {profile: {condor: {rank: Memory}}, queue: q, overwriteJobFiles: false}}\n"
        "finalJob: {computeSite: other}\n",
    )
    assert sorted(w.split(":")[0] for w in cfg.warnings) == [
        "finalJob.computeSite",
        "pipetask.isr.profile",
        "pipetask.isr.queue",
    ]
