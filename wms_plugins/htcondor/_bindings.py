"""Every call into the HTCondor Python bindings (``htcondor2``), and the one place their errors
become bps errors.

The bindings are imported inside the functions, never when the plugin is imported, so
``bps prepare`` and ``bps report`` stay fast and work on machines without them.  Any exception
raised by the bindings (``HTCondorException``, the ``RuntimeError``/``OSError``/``ValueError`` the
version-2 bindings also raise) comes out of :func:`condor_errors` as a :class:`bps.WmsError`
raised ``from`` it, with what we were doing in the message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bps import WmsError

#: JobStatus values of the HTCondor job ClassAd.
JOB_STATUS_NAMES = {
    1: "idle",
    2: "running",
    3: "removed",
    4: "completed",
    5: "held",
    6: "transferring output",
    7: "suspended",
}
STATUS_REMOVED = 3
STATUS_COMPLETED = 4


@contextlib.contextmanager
def condor_errors(action: str) -> Iterator[None]:
    """Run a block of bindings calls; anything they raise becomes ``WmsError(f"{action}: ...")``."""
    try:
        yield
    except WmsError:
        raise
    except ImportError as err:
        raise WmsError(
            f"{action}: the HTCondor Python bindings are not installed ({err}); "
            "`pip install htcondor` provides the htcondor2 module"
        ) from err
    except Exception as err:  # the bindings' own exception types, and what they let through
        message = " ".join(str(err).split()) or type(err).__name__
        raise WmsError(f"{action}: {type(err).__name__}: {message}") from err


def _schedd(schedd_name: str) -> Any:
    import htcondor2

    if not schedd_name:
        return htcondor2.Schedd()
    ad = htcondor2.Collector().locate(htcondor2.DaemonType.Schedd, schedd_name)
    return htcondor2.Schedd(ad)


def submit_dag(dag_file: Path, *, batch_name: str, schedd_name: str, restart: bool) -> int:
    """Submit ``dag_file`` as a DAGMan job and return its cluster id.

    DAGMan runs in the DAG's directory.  On ``restart`` the existing ``.condor.sub`` is rewritten
    (``UpdateSubmit``) and DAGMan picks up the newest rescue DAG by itself (``AutoRescue``), so
    nodes that succeeded before are not run again.
    """
    with condor_errors(f"submitting DAG {dag_file}"):
        import htcondor2

        options: dict[str, int | bool | str] = {"batch-name": batch_name, "AutoRescue": 1}
        if restart:
            options["UpdateSubmit"] = True
        description = htcondor2.Submit.from_dag(str(dag_file), options)
        description["initialdir"] = str(dag_file.parent)
        result = _schedd(schedd_name).submit(description)
        return int(result.cluster())


@dataclass(frozen=True, slots=True)
class DagmanJob:
    """What the schedd says about a DAGMan job (from its queue, else its history)."""

    cluster: int
    status: int | None
    """JobStatus, None if the schedd knows nothing of it."""
    in_queue: bool
    exit_code: int | None = None
    remove_reason: str = ""
    hold_reason: str = ""

    @property
    def status_name(self) -> str:
        return JOB_STATUS_NAMES.get(self.status or 0, "unknown")


_PROJECTION = ["ClusterId", "JobStatus", "ExitCode", "RemoveReason", "HoldReason"]


def query_dagman(cluster: int, schedd_name: str) -> DagmanJob:
    """The DAGMan job's state: the queue first, then the schedd's history."""
    with condor_errors(f"asking the schedd about DAGMan job {cluster}"):
        schedd = _schedd(schedd_name)
        ads = schedd.query(f"ClusterId == {cluster}", _PROJECTION)
        in_queue = bool(ads)
        if not ads:
            ads = list(schedd.history(f"ClusterId == {cluster}", _PROJECTION, match=1))
    if not ads:
        return DagmanJob(cluster, None, False)
    ad = ads[0]
    return DagmanJob(
        cluster=cluster,
        status=_int(ad.get("JobStatus")),
        in_queue=in_queue,
        exit_code=_int(ad.get("ExitCode")),
        remove_reason=str(ad.get("RemoveReason", "") or ""),
        hold_reason=str(ad.get("HoldReason", "") or ""),
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def remove_dag(cluster: int, schedd_name: str, reason: str) -> None:
    """condor_rm the DAGMan job; DAGMan then removes its node jobs and writes a rescue DAG."""
    with condor_errors(f"removing DAGMan job {cluster}"):
        import htcondor2

        _schedd(schedd_name).act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}", reason)


def ping_schedd(schedd_name: str) -> None:
    """Ask the schedd (the local one for ``""``) an empty question; raises WmsError if it cannot answer."""
    where = f"schedd {schedd_name}" if schedd_name else "the local schedd"
    with condor_errors(f"contact {where}"):
        _schedd(schedd_name).query(constraint="false", projection=["ClusterId"])
