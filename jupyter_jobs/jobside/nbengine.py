"""Execute a python3 notebook in this process, with IPython's ``InteractiveShell``, as nbclient would.

Why not a kernel: for a Python notebook the kernel nbclient starts is this very interpreter run as
``python -m ipykernel_launcher`` (the native ``python3`` kernel spec), so starting it only adds a
second interpreter start, ipykernel's and pyzmq's imports, five ZeroMQ sockets and the heartbeat
(about a second of a trivial notebook job's 2.8 s). The shell here runs each cell with the same
machinery the kernel's shell uses (magics, ``!cmd``, ``display()``, the last value, tracebacks),
and records what a kernel would have sent as nbformat outputs, the way nbclient stores them:

* ``stream`` (stdout/stderr, consecutive writes to one stream merged, ``!cmd`` output included),
* ``display_data`` (``display()``, inline matplotlib figures), updated in place by ``display_id``,
  cleared by ``clear_output`` (``wait=True``: at the next output),
* ``execute_result`` with the cell's ``execution_count``,
* ``error`` (``ename``, ``evalue``, the traceback lines); execution stops there unless the cell is
  tagged ``raises-exception``, and the message matches nbclient's ``CellExecutionError``.

Cells get ``execution_count`` 1, 2, ... (empty cells are skipped, as nbclient skips them),
``metadata.execution`` timestamps, and the notebook its ``language_info``. Any other kernel
(``--kernel``, or a kernelspec other than ``python3``) still runs through nbclient.
"""
from __future__ import annotations

import datetime
import importlib.util
import io
import os
import platform
import sys
from typing import Any, Callable

#: The kernel names this engine stands in for: the job's own interpreter.
KERNELS = ("python3", "python")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


class _Capture:
    """The outputs of the cell being run, and every output shown with a display id (for updates)."""

    def __init__(self, node: Callable[[dict], Any]) -> None:
        self.node = node
        self.outputs: list[dict[str, Any]] = []
        self.clear_pending = False
        self.displays: dict[str, list[dict[str, Any]]] = {}

    def add(self, output: dict[str, Any]) -> None:
        if self.clear_pending:
            self.outputs.clear()
            self.clear_pending = False
        last = self.outputs[-1] if self.outputs else None
        if output["output_type"] == "stream" and last and last["output_type"] == "stream" and last["name"] == output["name"]:
            last["text"] += output["text"]
            return
        self.outputs.append(self.node(output))


class _Stream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` while a cell runs: what it writes becomes a stream output."""

    def __init__(self, capture: _Capture, name: str, encoding: str) -> None:
        self._capture, self.name, self._encoding = capture, name, encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self._capture.add({"output_type": "stream", "name": self.name, "text": str(text)})
        return len(text)


def _shell_class(capture: _Capture) -> Any:
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):  # type: ignore[no-untyped-def]
            display_id = (transient or {}).get("display_id")
            if update:
                for output in capture.displays.get(display_id, []):
                    output["data"], output["metadata"] = data, metadata or {}
                return
            capture.add({"output_type": "display_data", "data": data, "metadata": metadata or {}})
            if display_id:
                capture.displays.setdefault(display_id, []).append(capture.outputs[-1])

        def clear_output(self, wait=False):  # type: ignore[no-untyped-def]
            if wait:
                capture.clear_pending = True
            else:
                capture.outputs.clear()

    class Hook(DisplayHook):
        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict, md_dict=None):  # type: ignore[no-untyped-def]
            capture.add({"output_type": "execute_result", "execution_count": self.prompt_count,
                         "data": format_dict, "metadata": md_dict or {}})

    class Shell(InteractiveShell):
        display_pub_class = Publisher
        displayhook_class = Hook

        def _showtraceback(self, etype, evalue, stb):  # type: ignore[no-untyped-def]
            capture.add({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                         "evalue": str(evalue), "traceback": list(stb)})

    return Shell


def language_info() -> dict[str, Any]:
    """What ipykernel's kernel_info_reply says of this interpreter (nbclient stores it)."""
    return {"name": "python", "version": platform.python_version(), "mimetype": "text/x-python",
            "codemirror_mode": {"name": "ipython", "version": 3}, "pygments_lexer": "ipython3",
            "nbconvert_exporter": "python", "file_extension": ".py"}


def error_message(source: str, error: dict[str, Any]) -> str:
    """nbclient's ``CellExecutionError`` text for a cell that raised."""
    traceback = "\n".join(error.get("traceback", []))
    return (f"An error occurred while executing the following cell:\n------------------\n{source}\n"
            f"------------------\n\n{traceback}\n")


def execute(nb: Any, node: Callable[[dict], Any],
            on_cell_executed: Callable[[Any, int], None] = lambda cell, index: None) -> str:
    """Run the notebook's code cells in order, storing their outputs (each made by ``node``, e.g.
    ``nbformat.NotebookNode``); the error text that stopped it, or ''."""
    if "MPLBACKEND" not in os.environ and importlib.util.find_spec("matplotlib_inline"):
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # as ipykernel sets it
    capture = _Capture(node)
    shell = _shell_class(capture).instance()
    shell.system = shell.system_piped  # !cmd output is the cell's, as in a kernel
    nb.metadata["language_info"] = language_info()
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    streams = (_Stream(capture, "stdout", encoding), _Stream(capture, "stderr", encoding))
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        capture.outputs, capture.clear_pending = [], False
        timing = {"iopub.status.busy": _now()}
        cell.metadata["execution"] = timing
        count = shell.execution_count
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = streams
        try:
            timing["iopub.execute_input"] = _now()
            result = shell.run_cell(cell.source, store_history=True)
        finally:
            sys.stdout, sys.stderr = saved
        timing["shell.execute_reply"] = timing["iopub.status.idle"] = _now()
        cell.execution_count = count
        cell.outputs = capture.outputs  # the very objects a later update_display changes
        on_cell_executed(cell, index)
        if not result.success and "raises-exception" not in cell.metadata.get("tags", []):
            error = next((o for o in capture.outputs if o["output_type"] == "error"), {})
            return error_message(cell.source, error)
    return ""
