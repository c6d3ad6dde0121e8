"""Run a notebook headless inside a job: ``python -m jupyter_jobs_jobside.notebook NB OUT [-p name=value]``.

Parameters are injected papermill-style: a cell after the one tagged ``parameters`` (or at the top);
a value is read as JSON (``3``, ``true``, ``[1, 2]``), else as a Python literal, else kept as text. The
executed notebook is written to OUT even when a cell fails; progress goes to the log. A python3
notebook runs in this process with IPython (:mod:`.nbengine`: no kernel to start); any other kernel
runs through nbclient, which needs that kernel in the job's environment. Either says plainly what is
missing.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import logging
import sys
from typing import Any

try:
    from . import nbengine
except ImportError:  # run as a script, not as part of the package
    import nbengine  # type: ignore[no-redef]


def read_value(text: str) -> Any:
    """``3`` -> 3, ``true`` -> True, ``'a'`` -> 'a', ``hello`` -> 'hello'."""
    if not text:
        return ""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def inject(nb: Any, params: dict, new_code_cell: Any) -> None:
    if not params:
        return
    source = "# Parameters\n" + "\n".join(f"{name} = {value!r}" for name, value in params.items())
    cell = new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    index = next((i + 1 for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    nb.cells.insert(index, cell)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_jobs_jobside.notebook")
    parser.add_argument("notebook")
    parser.add_argument("output")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--kernel", default=None)
    args = parser.parse_args(argv)
    try:
        import nbformat
    except ImportError as exc:
        return _missing(exc)
    nb = nbformat.read(args.notebook, as_version=4)
    params = {}
    for item in args.param:
        name, _, value = item.partition("=")
        params[name] = read_value(value)
    inject(nb, params, nbformat.v4.new_code_cell)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    done = {"count": 0}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell.cell_type == "code":
            done["count"] += 1
            print(f"cell {done['count']}/{len(code_cells)} done", flush=True)

    kernel = args.kernel or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    if kernel in nbengine.KERNELS and importlib.util.find_spec("IPython"):
        return _in_process(nb, args.notebook, args.output, len(code_cells), on_cell_executed)
    try:
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError as exc:
        return _missing(exc)
    # What the notebook's cells print and raise is in the executed notebook and the log; tornado's own reports
    # of a kernel channel closing under a callback while the kernel shuts down are noise to the job's user.
    logging.getLogger("tornado.general").setLevel(logging.CRITICAL)
    client = NotebookClient(nb, kernel_name=kernel, timeout=None, on_cell_executed=on_cell_executed,
                            resources={"metadata": {"path": "."}})
    print(f"executing {args.notebook} ({len(code_cells)} code cells, kernel {kernel}, {sys.executable})", flush=True)
    try:
        client.execute()
    except CellExecutionError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 1
    finally:
        nbformat.write(nb, args.output)
        print(f"executed notebook written to {args.output}", flush=True)
    return 0


def _missing(exc: ImportError) -> int:
    print(f"jupyter-jobs: running a notebook needs nbformat, and nbclient and a kernel for other kernels than python3, "
          f"in the job's environment, and {exc.name} is not there ({sys.executable}); use env.python: auto from a "
          "notebook, or add ipykernel and nbclient to env.python.packages", file=sys.stderr, flush=True)
    return 2


def _in_process(nb: Any, name: str, output: str, cells: int, on_cell_executed: Any) -> int:
    import nbformat

    print(f"executing {name} ({cells} code cells, in-process IPython, {sys.executable})", flush=True)
    try:
        error = nbengine.execute(nb, nbformat.NotebookNode, lambda cell, index: on_cell_executed(cell, index, None))
    finally:
        nbformat.write(nb, output)
        print(f"executed notebook written to {output}", flush=True)
    if error:
        print(error, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
