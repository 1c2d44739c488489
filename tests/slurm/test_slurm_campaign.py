"""The quickstart campaign through ``bps submit`` on a real Slurm cluster, with the Parsl plugin.

Every campaign's submit YAML includes ``submit_configs/parsl_slurm_example.yaml``, the file the
operator guide tells sites to start from, and changes only what a one-machine test cluster needs:
the repository, one node per block (the cluster has one node), and the environment the workers
activate.  So the shipped example is what is proven here: its partition, account, QOS, walltime
and ``#SBATCH --constraint=cpu`` line all reach a real slurmctld, which would refuse a job it
cannot place.

Three campaigns: one that succeeds (outputs merged, Slurm blocks seen by ``squeue``), one with a
failing quantum (the failure pruned downstream, the rest merged), and one cancelled with
``bps cancel`` while its block waits in the queue (the block leaves the queue, the run is
DELETED).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from slurm_cluster import PARTITION, SlurmCluster

from butler import Butler

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "submit_configs" / "parsl_slurm_example.yaml"
FAILING_PIPELINE = REPO_ROOT / "submit_configs" / "quickstart_failing_pipeline.yaml"
RUN_TIMEOUT = 300.0

pytestmark = pytest.mark.slurm


def _worker_init() -> str:
    """How the batch nodes find this test's ``pipetask`` (the example activates a venv too)."""
    activate = Path(sys.prefix) / "bin" / "activate"
    if activate.is_file():
        return f"source {activate}"
    return f"export PATH={Path(sys.executable).parent}:$PATH"


class Campaign:
    """A folder with a demo repository and a submit YAML that includes the Slurm example."""

    def __init__(self, cluster: SlurmCluster, top: Path, extra: str = "") -> None:
        self.cluster = cluster
        self.top = top
        top.mkdir(parents=True, exist_ok=True)
        self.env = {**cluster.env, "SKYBATCH_RUNS_DIR": str(top / "runs-index")}
        self.run(["butler", "make-demo-repo", "repo", "--exposures", "2", "--detectors", "2"])
        submit = f"""\
            includeConfigs: [{EXAMPLE}]
            payload:
              butlerConfig: {top / "repo"}
            site:
              cluster:
                nodes: 1                    # the test cluster has one node
                maxBlocks: 1
                walltime: "00:20:00"
                workerInit: "{_worker_init()}"
            """
        (top / "submit.yaml").write_text(textwrap.dedent(submit) + textwrap.dedent(extra))

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv, cwd=self.top, env=self.env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}\n"
                f"{self.cluster.log_tail()}"
            )
        return done

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bps", "submit", "submit.yaml"],
            cwd=self.top,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_id(self) -> str:
        """The run's id, from the runs index once ``bps submit`` has recorded it."""
        out = self.run(["bps", "report"]).stdout
        ids = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
        assert len(ids) == 1, f"expected one run in this campaign's index:\n{out}"
        return ids[0]

    def datasets(self, collection: str, dataset_type: str) -> int:
        with Butler(self.top / "repo") as butler:
            return len(butler.query_datasets(dataset_type, collection))


def _parsl_blocks(cluster: SlurmCluster, all_states: bool = False) -> list[dict[str, str]]:
    return [job for job in cluster.jobs(all_states) if job["name"].startswith("parsl")]


def _finish(proc: subprocess.Popen[str], cluster: SlurmCluster) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"bps submit did not finish\n{out}\n{err}\n{cluster.log_tail()}") from None
    return proc.returncode, out + err


def test_quickstart_runs_on_slurm_blocks(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    campaign = Campaign(slurm_cluster, tmp_path / "ok")
    proc = campaign.start()
    seen: list[dict[str, str]] = []
    while proc.poll() is None and not seen:
        seen = _parsl_blocks(slurm_cluster)
        time.sleep(0.2)
    code, output = _finish(proc, slurm_cluster)
    assert code == 0, output
    assert "SUCCEEDED" in output
    # The block came from our partition; squeue saw it queued or running while the campaign ran,
    # and still lists it (finished) afterwards.
    blocks = _parsl_blocks(slurm_cluster, all_states=True)
    assert blocks, f"no Parsl block ever reached Slurm:\n{slurm_cluster.log_tail()}"
    assert seen, "squeue never showed the Parsl block while bps submit was running"
    assert {job["partition"] for job in blocks} == {PARTITION}
    assert seen[0]["state"] in ("PENDING", "CONFIGURING", "RUNNING")
    # Parsl scales its blocks in when the workflow ends: nothing is left in the queue.
    assert not _parsl_blocks(slurm_cluster)
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout
    output_collection = f"u/{user.strip()}/dr1-step1"
    assert campaign.datasets(output_collection, "calexp") == 4  # 2 exposures x 2 detectors
    assert campaign.datasets(output_collection, "summary") == 2


def test_failing_quantum_on_slurm_is_reported_and_the_rest_merged(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    campaign = Campaign(
        slurm_cluster,
        tmp_path / "fail",
        extra=f"pipelineYaml: {FAILING_PIPELINE}\nnumberOfRetries: 0\n",
    )
    code, output = _finish(campaign.start(), slurm_cluster)
    assert code != 0, output
    report = campaign.run(["bps", "report", "--id", campaign.run_id()], check=False).stdout
    rows = {line.split()[0]: line.split()[1:] for line in report.splitlines() if line.strip()}
    header = rows["TASK"]
    calibrate = dict(zip(header, rows["calibrate"], strict=True))
    assert calibrate["FAILED"] == "2", report  # detector 1 of each of the 2 exposures
    assert calibrate["SUCCEEDED"] == "2", report
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout
    assert campaign.datasets(f"u/{user.strip()}/dr1-step1", "calexp") == 2


def test_cancel_removes_a_queued_block(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    campaign = Campaign(slurm_cluster, tmp_path / "cancel")
    slurm_cluster.set_partition("DOWN")  # blocks queue but cannot start: the campaign waits
    try:
        proc = campaign.start()
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (waiting := _parsl_blocks(slurm_cluster)):
            assert proc.poll() is None, f"bps submit ended early:\n{proc.communicate()}"
            assert time.monotonic() < deadline, "no Parsl block was ever queued"
            time.sleep(0.2)
        assert waiting[0]["state"] == "PENDING"
        cancel = campaign.run(["bps", "cancel", "--id", campaign.run_id()], check=False)
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        code, output = _finish(proc, slurm_cluster)
    finally:
        slurm_cluster.set_partition("UP")
    # The foreground bps submit ends as documented for a run that did not finish: status 3.
    assert code == 3, output
    assert not _parsl_blocks(slurm_cluster), "the cancelled campaign's block is still queued"
    report = campaign.run(["bps", "report", "--id", campaign.run_id()], check=False).stdout
    assert "DELETED" in report.splitlines()[0], report
