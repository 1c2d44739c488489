"""Where the HTCondor plugin keeps things inside a submit directory (one place, used by every module).

::

    <name>.dag                 the DAG: one SUBMIT-DESCRIPTION per task label, JOB/VARS per node
    <name>.dag.config          DAGMan configuration (throttles) named by the DAG's CONFIG line
    <name>.dag.condor.sub      DAGMan's own submit description (written at submit time)
    <name>.dag.dagman.out      DAGMan's log
    <name>.dag.nodes.log       every node job's HTCondor events (submit, execute, terminate, hold ...)
    <name>.dag.nodes.log.<N>   the nodes log of the submission whose DAGMan was job N, kept by
                               restart (DAGMan truncates the nodes log when it starts again)
    <name>.dag.rescue001 ...   rescue DAGs DAGMan writes when a run ends unfinished (used by restart)
    <name>.node_status         the node status file (ClassAds), rewritten by DAGMan while it runs
    skybatch_unless_exit.sh    POST script for jobs with several retryUnlessExit codes (if any)
    htcondor_site.json         the validated site settings
    htcondor_run.json          the DAGMan cluster id of each submission, and whether it was cancelled
    logs/<label>/<job>.<cluster>.out|.err   each job attempt's stdout and stderr
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class HTCondorLayout:
    submit_dir: Path
    name: str
    """The workflow name (``uniqProcName``): the DAG file's stem."""

    @property
    def dag_file(self) -> Path:
        return self.submit_dir / f"{self.name}.dag"

    @property
    def dag_config(self) -> Path:
        return self.submit_dir / f"{self.name}.dag.config"

    @property
    def dagman_out(self) -> Path:
        return self.submit_dir / f"{self.name}.dag.dagman.out"

    @property
    def nodes_log(self) -> Path:
        return self.submit_dir / f"{self.name}.dag.nodes.log"

    @property
    def node_status(self) -> Path:
        return self.submit_dir / f"{self.name}.node_status"

    @property
    def unless_exit_script(self) -> Path:
        """POST script of nodes with several retryUnlessExit codes (written only when needed)."""
        return self.submit_dir / "skybatch_unless_exit.sh"

    @property
    def site_file(self) -> Path:
        return self.submit_dir / "htcondor_site.json"

    @property
    def run_file(self) -> Path:
        return self.submit_dir / "htcondor_run.json"

    def log_dir(self, label: str) -> Path:
        return self.submit_dir / "logs" / label

    def stdout(self, label: str, name: str, cluster: int | None) -> Path:
        return self.log_dir(label) / f"{name}.{_cluster(cluster)}.out"

    def stderr(self, label: str, name: str, cluster: int | None) -> Path:
        return self.log_dir(label) / f"{name}.{_cluster(cluster)}.err"

    def archived_nodes_log(self, cluster: int) -> Path:
        return self.submit_dir / f"{self.name}.dag.nodes.log.{cluster}"

    def nodes_logs(self) -> list[Path]:
        """Every nodes log, oldest submission first (archived ones, then the current one)."""
        prefix = f"{self.name}.dag.nodes.log."
        archived = [p for p in self.submit_dir.glob(prefix + "*") if p.name[len(prefix) :].isdigit()]
        archived.sort(key=lambda p: int(p.name[len(prefix) :]))
        return [*archived, self.nodes_log]

    def rescue_dags(self) -> list[Path]:
        """Rescue DAGs written so far, oldest first."""
        return sorted(self.submit_dir.glob(f"{self.name}.dag.rescue[0-9][0-9][0-9]"))


def _cluster(cluster: int | None) -> str:
    return "CLUSTER" if cluster is None else str(cluster)
