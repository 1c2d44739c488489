"""Errors raised by the batch production layer.

Every error derives from :class:`BpsError` and also from the builtin it refines, so callers may
catch either ``BpsError`` or, say, ``ValueError``::

    BpsError
     +-- BpsConfigError (ValueError)        a submit YAML that cannot be loaded, resolved or validated
     +-- WmsPluginError (LookupError)       an unknown or broken wmsServiceClass
     +-- WorkflowBuildError (ValueError)    a QuantumGraph that cannot become a workflow (reserved labels)
     |    +-- EmptyGraphError               the QuantumGraph has no quanta: nothing to submit
     +-- SubmitDirError (FileExistsError)   the submit directory is already used by another run
     +-- OutputRunTakenError (FileExistsError)  payload.outputRun already exists in the repository
     +-- RunNotFoundError (LookupError)     a run id that matches no recorded run (or several)
     +-- StateFileError (ValueError)        a run's state or workflow file is unreadable or too new
     +-- WmsError (RuntimeError)            the workflow engine failed (wraps the engine's own error)
     +-- DashboardError (RuntimeError)      ``bps dashboard`` cannot start (extra missing, port taken)
     +-- UnprotectedDashboardError (ValueError)  a non-loopback --host without --token

The CLI maps these to one-line messages and exit codes in one place (:mod:`bps.cli._exit_codes`).
"""

from __future__ import annotations


class BpsError(Exception):
    """Root of all errors raised by bps and its WMS plugins."""


class BpsConfigError(BpsError, ValueError):
    """A submit YAML (or an included file, or a command-line override) is invalid.

    The message always names the key path and the file that set it, because a campaign config is
    usually several files deep and the operator must know which one to edit.
    """


class WmsPluginError(BpsError, LookupError):
    """``wmsServiceClass`` names no installed plugin, or the plugin cannot be loaded."""


class WorkflowBuildError(BpsError, ValueError):
    """The QuantumGraph cannot be turned into a workflow, e.g. a task label bps reserves for its own jobs."""


class EmptyGraphError(WorkflowBuildError):
    """The QuantumGraph has no quanta, so there is no workflow to run."""


class SubmitDirError(BpsError, FileExistsError):
    """The submit directory already holds another run; runs never share a directory."""


class OutputRunTakenError(BpsError, FileExistsError):
    """The payload's output run already exists: another submit or execution holds it.

    A submit reserves its output run in the registry once the graph is built, so two submits (or a
    submit and a ``pipetask run``) never write one run.  Exit status 1: the request is well formed,
    the repository's state refuses it.
    """


class RunNotFoundError(BpsError, LookupError):
    """A run id (or prefix, or path) that matches no recorded run, or more than one."""


class StateFileError(BpsError, ValueError):
    """A persisted bps file (state, workflow, run record) is corrupt or of an unknown major version."""


class WmsError(BpsError, RuntimeError):
    """The workflow engine itself failed; raised ``from`` the engine's own exception."""


class DashboardError(BpsError, RuntimeError):
    """``bps dashboard`` cannot start: its ``dashboard`` extra is missing or its address cannot be bound."""


class UnprotectedDashboardError(BpsError, ValueError):
    """The dashboard was asked to listen beyond this machine without a token.

    Run states, log tails and submit configs are not for everyone on the network, so a host other
    than a loopback address needs ``--token``.
    """
