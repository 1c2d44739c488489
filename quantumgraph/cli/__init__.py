"""The ``pipetask`` command: build, show and run QuantumGraphs; run quanta inside batch jobs.

Importing this package (``pipetask`` itself, or quantumgraph's ``butler`` subcommands) registers
:class:`~quantumgraph.QuantumGraphError` with the command-line error boundary, so this layer's
errors print one line and anything else keeps its traceback.
"""

from __future__ import annotations

from butler.cli_support import register_error_root

from .._exceptions import QuantumGraphError

register_error_root(QuantumGraphError)

from ._main import main, parse_graph_options  # noqa: E402  (after the registration it relies on)

__all__ = ["main", "parse_graph_options"]
