"""Run a notebook headless inside a job: ``python -m jupyter_jobs.kernel.notebook_runner NB OUT [-p k=v]``.

Parameters are injected papermill-style: a cell after the one tagged ``parameters`` (or at the
top). The executed notebook is written to OUT even when a cell fails; progress goes to the log.
"""
from __future__ import annotations

import argparse
import sys

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def inject(nb: nbformat.NotebookNode, params: dict) -> None:
    if not params:
        return
    source = "# Parameters\n" + "\n".join(f"{name} = {value!r}" for name, value in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    index = next((i + 1 for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    nb.cells.insert(index, cell)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("output")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--kernel", default=None)
    args = parser.parse_args(argv)
    nb = nbformat.read(args.notebook, as_version=4)
    params = {}
    for item in args.param:
        name, _, value = item.partition("=")
        params[name] = yaml.safe_load(value) if value else ""
    inject(nb, params)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    done = {"count": 0}

    def on_cell_executed(cell, cell_index, execute_reply):  # type: ignore[no-untyped-def]
        if cell.cell_type == "code":
            done["count"] += 1
            print(f"cell {done['count']}/{len(code_cells)} done", flush=True)

    kernel = args.kernel or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    client = NotebookClient(nb, kernel_name=kernel, timeout=None, on_cell_executed=on_cell_executed,
                            resources={"metadata": {"path": "."}})
    print(f"executing {args.notebook} ({len(code_cells)} code cells, kernel {kernel})", flush=True)
    try:
        client.execute()
    except CellExecutionError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 1
    finally:
        nbformat.write(nb, args.output)
        print(f"executed notebook written to {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
