"""A real one-machine Slurm cluster for the tests: munged, slurmctld and slurmd, no systemd.

Everything lives in one folder the test session owns: the munge key and socket, a generated
``slurm.conf`` (free ports, this host as the only node, one partition called ``normal`` and the
node feature ``cpu``, matching ``submit_configs/parsl_slurm_example.yaml``), state, spool and logs.
Clients find the cluster through ``SLURM_CONF``, which :attr:`SlurmCluster.env` carries; nothing
in ``/etc`` is used, so a session never disturbs a site's own Slurm, and two sessions on one
machine run two separate clusters.

The daemons run as root (``SlurmUser=root``): slurmd must start jobs, and CI runs as root.  Where
the packages are missing and cannot be installed, or we are not root, :func:`why_unavailable`
says why and the tests skip with that message.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from host_packages import ensure_debian_packages

PACKAGES = ["slurm-wlm", "munge"]
DAEMONS = ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"]
CLIENTS = ["sbatch", "squeue", "scancel", "sinfo", "scontrol", "munge"]
PARTITION = "normal"
FEATURE = "cpu"


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the test cluster (the tests skip with the message)."""


def why_unavailable() -> str | None:
    """Why no cluster can start here, or None: installs Slurm and munge when missing and allowed."""
    if os.geteuid() != 0:
        return f"the one-machine Slurm cluster runs its daemons as root (running as uid {os.geteuid()})"
    return ensure_debian_packages(PACKAGES, DAEMONS + CLIENTS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.8)
    return 1024


@dataclass
class SlurmCluster:
    """A running cluster: its folder, the environment clients need, and ways to look at it."""

    top: Path
    node: str

    @property
    def conf(self) -> Path:
        return self.top / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The calling environment plus ``SLURM_CONF``, so sbatch/squeue reach this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def command(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def jobs(self, all_states: bool = False) -> list[dict[str, str]]:
        """squeue's view: one dict per job (id, name, state, partition, reason).

        With ``all_states``, finished jobs are listed too for as long as slurmctld keeps them
        (``MinJobAge``, set long in our slurm.conf), so a test can see blocks that came and went.
        """
        fmt = "%i|%j|%T|%P|%r"
        argv = ["squeue", "--noheader", "--format", fmt] + (["--states", "all"] if all_states else [])
        rows = []
        for line in self.command(*argv).splitlines():
            job_id, name, state, partition, reason = line.split("|")
            rows.append(
                {"id": job_id, "name": name, "state": state, "partition": partition, "reason": reason}
            )
        return rows

    def set_partition(self, state: str) -> None:
        """UP or DOWN: a DOWN partition keeps new blocks pending (a campaign that waits for nodes)."""
        self.command("scontrol", "update", f"PartitionName={PARTITION}", f"State={state}")

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.top / "log" / name
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            parts.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons (slurmd, slurmctld, munged) and what they left."""
        subprocess.run(["scancel", "--full", "--quiet", f"--partition={PARTITION}"], env=self.env)
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.top / "run" / f"{name}.pid"
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            _terminate(pid)
        # slurmstepd processes of this cluster's jobs (their environment names our SLURM_CONF)
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    ours = (
                        b"slurmstepd" in (proc / "cmdline").read_bytes()
                        and str(self.conf).encode() in (proc / "environ").read_bytes()
                    )
                except OSError:
                    continue
                if ours:
                    _terminate(int(proc.name))


def _terminate(pid: int, grace: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _write_conf(top: Path, node: str) -> None:
    settings = {
        "ClusterName": "skybatchtest",
        "SlurmctldHost": f"{node}(127.0.0.1)",
        "SlurmctldPort": str(_free_port()),
        "SlurmdPort": str(_free_port()),
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "AuthInfo": f"socket={top / 'run' / 'munge.sock'}",
        "CredType": "cred/munge",
        "StateSaveLocation": str(top / "state"),
        "SlurmdSpoolDir": str(top / "spool"),
        "SlurmctldPidFile": str(top / "run" / "slurmctld.pid"),
        "SlurmdPidFile": str(top / "run" / "slurmd.pid"),
        "SlurmctldLogFile": str(top / "log" / "slurmctld.log"),
        "SlurmdLogFile": str(top / "log" / "slurmd.log"),
        # No cgroups, accounting or task binding: nothing here needs more than fork and kill.
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "MpiDefault": "none",
        "ReturnToService": "2",
        "SchedulerType": "sched/backfill",
        "MinJobAge": "3600",  # finished jobs stay visible to `squeue --states all`
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.append(
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory={_memory_mb()} "
        f"Features={FEATURE} State=UNKNOWN"
    )
    lines.append(f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    (top / "slurm.conf").write_text("\n".join(lines) + "\n")


def _daemon(argv: list[str], what: str, env: dict[str, str]) -> None:
    # SLURM_CONF in the daemons' environment reaches every slurmstepd, which is how stop() knows
    # which job steps are this cluster's.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    if done.returncode != 0:
        raise SlurmUnavailable(f"{what} did not start ({done.returncode}): {done.stderr.strip()[-400:]}")


def start_cluster(top: Path, timeout: float = 60.0) -> SlurmCluster:
    """Start munged, slurmctld and slurmd under ``top``; return once the node is idle."""
    for sub in ("munge", "run", "state", "spool", "log"):
        (top / sub).mkdir(parents=True, exist_ok=True)
    (top / "munge").chmod(0o700)
    key = top / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    node = socket.gethostname().split(".")[0]
    _write_conf(top, node)
    cluster = SlurmCluster(top, node)
    _daemon(
        [
            "/usr/sbin/munged",
            "--force",  # as root, with our own key and socket outside /etc and /run
            f"--socket={top / 'run' / 'munge.sock'}",
            f"--key-file={key}",
            f"--log-file={top / 'log' / 'munged.log'}",
            f"--pid-file={top / 'run' / 'munged.pid'}",
            f"--seed-file={top / 'munge' / 'seed'}",
        ],
        "munged",
        cluster.env,
    )
    try:
        _daemon(["/usr/sbin/slurmctld", "-f", str(cluster.conf)], "slurmctld", cluster.env)
        _daemon(["/usr/sbin/slurmd", "-f", str(cluster.conf), "-N", node], "slurmd", cluster.env)
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                ["sinfo", "--noheader", "--format", "%T"],
                capture_output=True,
                text=True,
                env=cluster.env,
                timeout=30,
            )
            if done.returncode == 0 and done.stdout.strip() == "idle":
                return cluster
            if time.monotonic() > deadline:
                raise SlurmUnavailable(
                    f"the node did not become idle in {timeout:.0f} s (sinfo: {done.stdout.strip()!r} "
                    f"{done.stderr.strip()!r})\n{cluster.log_tail()}"
                )
            time.sleep(0.5)
    except BaseException:
        cluster.stop()
        raise
