"""Run a notebook cell inside a job as IPython runs it: ``python -m jupyter_jobs_jobside.cell``.

The cell (``_jj_cell.py``, beside it in the job's folder) runs in an IPython ``InteractiveShell``, so
line and cell magics, ``!cmd``, ``display()`` and the last expression's value work as in the notebook,
and a traceback shows the cell's own lines. What the cell displays (``display()``, figures through
matplotlib's inline backend, the last expression's rich value, its error) is appended, one nbformat
output a line, to ``$JOB_DISPLAYS`` as it happens (the server streams it at ``GET /jobs/{id}/displays``);
the text of each goes to the log too, as a terminal IPython prints it. An in-process shell, not a kernel: it starts in a fraction
of a kernel's time and needs no ports; where IPython is missing (an image with the bare standard
library, ``env.python: none``) the cell runs as plain Python and says so.

Values travel by value: ``_jj_in.pkl`` holds the ``--in`` variables (cloudpickle: functions, lambdas
and classes of the notebook come with their code), and the ``--out`` ones (``JJ_OUT``) leave in
``$JOB_OUTPUTS/_jj_out.pkl``, each serialised on its own: one that cannot be is named with its type in
``__jj_errors__`` and in the log, and the others still arrive. What the cell computed is never thrown
away by a failure after it: the outputs are written even when the cell raised.
"""
from __future__ import annotations

import base64
import json
import os
import pickle
import sys
from typing import Any

ERRORS_KEY = "__jj_errors__"
#: matplotlib's backend in a job cell: figures become image/png displays, as in the notebook.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class Displays:
    """Appends Jupyter outputs to a file, one JSON line each, written whole with one ``write``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.failed = False

    def write(self, output: dict[str, Any]) -> None:
        if not self.path or self.failed:
            return
        try:
            line = (json.dumps(output, default=_jsonable) + "\n").encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except (OSError, TypeError, ValueError) as exc:  # disk full, an object JSON cannot hold: the log says so
            self.failed = True
            print(f"jupyter-jobs: the cell's displays are no longer kept ({exc}); its log still is",
                  file=sys.stderr, flush=True)


def _jsonable(value: Any) -> Any:
    """Bytes (a PNG some formatters give raw) as base64 text, as Jupyter's own messages carry them."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return repr(value)


def _shell_classes(displays: Displays) -> tuple[type, type, type]:
    """An InteractiveShell whose displays, results and errors also go to ``displays``."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):  # type: ignore[override]
            super().publish(data, metadata, transient=transient, update=update, **kwargs)  # source: deprecated
            output = {"output_type": "update_display_data" if update else "display_data",
                      "data": data, "metadata": metadata or {}}
            if transient:
                output["transient"] = transient
            displays.write(output)

        def clear_output(self, wait: bool = False) -> None:
            super().clear_output(wait)
            displays.write({"output_type": "clear_output", "wait": wait})

    class Hook(DisplayHook):
        def write_format_data(self, format_dict, md_dict=None):  # type: ignore[override]
            super().write_format_data(format_dict, md_dict)
            displays.write({"output_type": "execute_result", "execution_count": self.prompt_count,
                            "data": format_dict, "metadata": md_dict or {}})

    class Shell(InteractiveShell):
        def _showtraceback(self, etype, evalue, stb):  # type: ignore[override]
            super()._showtraceback(etype, evalue, stb)
            if not issubclass(etype, SystemExit):  # the job's exit status, not an error of the cell
                displays.write({"output_type": "error", "ename": etype.__name__, "evalue": str(evalue),
                                "traceback": list(stb)})

    return Shell, Publisher, Hook


def _dumps(value: Any) -> bytes:
    try:
        import cloudpickle
    except ImportError:  # plain pickle: classes and functions of __main__ cannot travel then
        return pickle.dumps(value)
    return cloudpickle.dumps(value)


def _run_plain(source: str, namespace: dict[str, Any]) -> int:
    print("jupyter-jobs: IPython is not in the job's environment; the cell runs as plain Python "
          "(no magics, no !commands)", file=sys.stderr, flush=True)
    try:
        exec(compile(source, "<job cell>", "exec"), namespace)
    except SystemExit as exit:
        return _exit_status(exit)
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _run_ipython(source: str, inputs: dict[str, Any], displays: Displays) -> tuple[int, dict[str, Any]]:
    """The cell's exit status (``sys.exit(3)`` in it is 3, as for a script; any other error 1) and namespace."""
    import importlib.util
    import warnings

    Shell, Publisher, Hook = _shell_classes(displays)
    if "MPLBACKEND" not in os.environ and importlib.util.find_spec("matplotlib_inline"):
        os.environ["MPLBACKEND"] = INLINE_BACKEND  # taken when the cell imports pyplot, not before
    shell = Shell.instance(colors="nocolor", display_pub_class=Publisher, displayhook_class=Hook)
    shell.user_ns.update(inputs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="To exit: use 'exit'")  # IPython's words for a notebook's user
        result = shell.run_cell(source, store_history=True)
    sys.stdout.flush()
    error = result.error_in_exec or result.error_before_exec
    if isinstance(error, SystemExit):
        return _exit_status(error), shell.user_ns
    return (0 if result.success else 1), shell.user_ns


def _exit_status(exit: SystemExit) -> int:
    if exit.code is None:
        return 0
    return exit.code if isinstance(exit.code, int) else 1


def main() -> int:
    sys.path.insert(0, os.getcwd())  # modules shipped beside the cell
    inputs: dict[str, Any] = {}
    if os.path.exists("_jj_in.pkl"):
        with open("_jj_in.pkl", "rb") as handle:
            inputs = pickle.load(handle)
    with open("_jj_cell.py", encoding="utf-8") as handle:
        source = handle.read()
    displays = Displays(os.environ.get("JOB_DISPLAYS", ""))
    try:
        status, namespace = _run_ipython(source, inputs, displays)
    except ImportError:
        namespace = {"__name__": "__main__", **inputs}
        status = _run_plain(source, namespace)
    names = [n for n in os.environ.get("JJ_OUT", "").split(",") if n]
    if names and not _write_outputs(names, namespace) and status == 0:
        status = 1  # an --out variable did not travel: the job did not give all it was asked for
    return status


def _write_outputs(names: list[str], namespace: dict[str, Any]) -> bool:
    """Each ``--out`` variable serialised on its own; those that cannot be are named, the others kept."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in names:
        if name not in namespace:
            errors[name] = "the cell did not define it"
            continue
        value = namespace[name]
        try:
            values[name] = _dumps(value)
        except Exception as exc:  # any failure to serialise is that variable's, never the others'
            errors[name] = f"{type(value).__module__}.{type(value).__qualname__} cannot be serialised: {exc}"
    for name, why in errors.items():
        print(f"jupyter-jobs: --out {name}: {why}", file=sys.stderr, flush=True)
    with open(os.path.join(os.environ["JOB_OUTPUTS"], "_jj_out.pkl"), "wb") as handle:
        pickle.dump({**values, ERRORS_KEY: errors}, handle)
    return not errors


if __name__ == "__main__":
    sys.exit(main())
