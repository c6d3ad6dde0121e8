"""Run a notebook cell inside a job as IPython runs it: ``python -m jupyter_jobs_jobside.cell``.

The cell (``_jj_cell.py``, beside it in the job's folder) runs in an IPython ``InteractiveShell``, so
line and cell magics, ``!cmd``, ``display()`` and the last expression's value work as in the notebook,
and a traceback shows the cell's own lines. An in-process shell, not a kernel: it starts in a fraction
of a kernel's time and needs no ports; where IPython is missing (an image with the bare standard
library, ``env.python: none``) the cell runs as plain Python and says so.

Values travel by value: ``_jj_in.pkl`` holds the ``--in`` variables (cloudpickle: functions, lambdas
and classes of the notebook come with their code), and the ``--out`` ones (``JJ_OUT``) leave in
``$JOB_OUTPUTS/_jj_out.pkl``, each serialised on its own: one that cannot be is named with its type in
``__jj_errors__`` and in the log, and the others still arrive. What the cell computed is never thrown
away by a failure after it: the outputs are written even when the cell raised.
"""
from __future__ import annotations

import os
import pickle
import sys
from typing import Any

ERRORS_KEY = "__jj_errors__"


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


def _run_ipython(source: str, inputs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The cell's exit status (``sys.exit(3)`` in it is 3, as for a script; any other error 1) and namespace."""
    import warnings

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="nocolor")
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
    try:
        status, namespace = _run_ipython(source, inputs)
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
