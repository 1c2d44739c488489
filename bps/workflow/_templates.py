"""Job command lines from the operator's templates (LSST's ``runQuantumCommand`` and friends).

The config already rendered each template for its job context (:class:`bps.config.CommandTemplates`);
what is left are LSST's per-job placeholders, filled here for every job:

=====================  ===========================================================================
``{qgraphFile}``       the graph file in the submit directory (also ``{inputQgraphFile}``,
                       ``{outputQgraphFile}``)
``{qgraphNodeId}``     the job's quantum ids, comma-separated, in the order the job runs them
``{qgraphId}``         the graph's id (its id prefix, as hex)
``{jobName}``          the job's name; ``{label}`` its label
=====================  ===========================================================================

``${VAR}`` the submitting shell did not set is left for the job's environment; LSST's program paths
``${CTRL_MPEXEC_DIR}/bin/pipetask`` and ``${DAF_BUTLER_DIR}/bin/butler`` (with those variables
unset) become skybatch's ``pipetask`` and ``butler``, found on the job's PATH.  Templates are split
into argv once per context (shell quoting rules), so per job only the tokens holding a
placeholder are rewritten.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._exceptions import WorkflowBuildError

_PROGRAM = re.compile(r"\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*)\}/bin/(?P<name>[A-Za-z0-9_.-]+)")
#: LSST environment variables that only locate LSST's own programs.
_LSST_PROGRAM_DIRS = {"CTRL_MPEXEC_DIR": "pipetask", "DAF_BUTLER_DIR": "butler"}
_JOB_TOKEN = re.compile(
    r"\{(qgraphFile|inputQgraphFile|outputQgraphFile|qgraphNodeId|qgraphId|jobName|label)\}"
)


@dataclass(frozen=True, slots=True)
class _Template:
    tokens: tuple[str, ...]
    variable: tuple[int, ...]
    """Indices of tokens holding a per-job placeholder."""

    @classmethod
    def parse(cls, text: str, what: str) -> _Template:
        try:
            tokens = shlex.split(text)
        except ValueError as err:
            raise WorkflowBuildError(f"{what}: cannot split the command line {text!r}: {err}") from None
        if not tokens:
            raise WorkflowBuildError(f"{what}: the command line is empty")
        program = _PROGRAM.fullmatch(tokens[0])
        if program is not None and _LSST_PROGRAM_DIRS.get(program.group("var")) == program.group("name"):
            tokens[0] = program.group("name")
        variable = tuple(i for i, token in enumerate(tokens) if _JOB_TOKEN.search(token))
        return cls(tuple(tokens), variable)

    def fill(self, values: Mapping[str, str]) -> list[str]:
        """The argv with this job's values; a token that was only a placeholder and fills to
        nothing (``{qgraphNodeId}`` of the init job) is dropped, as the shell would drop it."""
        if not self.variable:
            return list(self.tokens)
        argv = list(self.tokens)
        for i in self.variable:
            argv[i] = _JOB_TOKEN.sub(lambda m: values[m.group(1)], argv[i])
        return [a for i, a in enumerate(argv) if a or i not in self.variable]


class JobCommands:
    """Every job's argv from the config's command templates (see the module docstring)."""

    def __init__(
        self,
        quantum: Mapping[str, str],
        init: str,
        final: Sequence[str],
        graph_file: str,
        graph_id: str,
    ) -> None:
        self._quantum = {label: _Template.parse(text, "runQuantumCommand") for label, text in quantum.items()}
        self._init = _Template.parse(init, "pipetask.pipetaskInit.runQuantumCommand")
        self._final = [_Template.parse(text, f"finalJob.command{i + 1}") for i, text in enumerate(final)]
        self._run = {
            "qgraphFile": graph_file,
            "inputQgraphFile": graph_file,
            "outputQgraphFile": graph_file,
            "qgraphId": graph_id,
        }

    def _values(self, name: str, label: str, quantum_ids: Sequence[uuid.UUID]) -> dict[str, str]:
        return {
            **self._run,
            "qgraphNodeId": ",".join(str(q) for q in quantum_ids),
            "jobName": name,
            "label": label,
        }

    def quantum(
        self, name: str, label: str, quantum_ids: Sequence[uuid.UUID], job_local: Sequence[str] = ()
    ) -> list[str]:
        """A quantum job's argv; ``job_local`` types are added for a ``pipetask run-qbb`` command."""
        template = self._quantum.get(label) or self._quantum[""]
        argv = template.fill(self._values(name, label, quantum_ids))
        if job_local and argv[0].rsplit("/", 1)[-1] == "pipetask" and "run-qbb" in argv:
            for dataset_type in job_local:
                argv += ("--job-local", dataset_type)
        return argv

    def init(self, name: str, label: str) -> list[str]:
        return self._init.fill(self._values(name, label, ()))

    def final(self, name: str, label: str) -> list[str] | None:
        """The final job's argv: its one command, or a shell running them in order; None if none."""
        commands = [t.fill(self._values(name, label, ())) for t in self._final]
        if not commands:
            return None
        if len(commands) == 1:
            return commands[0]
        script = " && ".join(shlex.join(argv) for argv in commands)
        return ["/bin/sh", "-c", script]
