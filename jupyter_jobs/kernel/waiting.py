"""Run All: a cell that uses a name a still-running job of this kernel will deliver (``--out``) waits for it.

A ``pre_run_cell`` hook reads the cell about to run only while some ``--out`` value is pending, so no
other cell is slowed. The wait says which job it waits for and stops on a kernel interrupt. A cell can
only be stopped from inside, so when the wait ends without the values (the job failed, the user
interrupted) a one-shot AST transformer makes the cell raise that instead of running and failing with a
NameError: Run All stops there, saying why.
"""
from __future__ import annotations

import ast
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .client import TERMINAL, JobsClient


class OutNotDelivered(RuntimeError):
    """A cell needed ``--out`` values that their job did not deliver."""


@dataclass
class Pending:
    job: dict
    names: list[str]


def out_names(job: dict) -> list[str]:
    """The ``--out`` variables of a cell job, from its spec (none for other jobs)."""
    names = (((job.get("spec") or {}).get("env") or {}).get("vars") or {}).get("JJ_OUT", "")
    return [n for n in str(names).split(",") if n]


def loaded_names(source: str) -> set[str]:
    """The names a cell (plain Python, after IPython's transformations) reads; empty when it cannot be parsed."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):  # x += 1 reads x
            names.add(node.target.id)
    return names


class _Refusal(ast.NodeTransformer):
    """Replaces the next cell with a ``raise`` once armed (IPython runs its AST transformers on every cell)."""

    def __init__(self) -> None:
        self.armed: str | None = None

    def visit(self, node: ast.AST) -> ast.AST:
        if self.armed is None or not isinstance(node, ast.Module):
            return node
        code, self.armed = self.armed, None
        return ast.parse(code)


class OutWaiter:
    """The ``--out`` values this kernel's running jobs will deliver, and the hook that waits for them."""

    def __init__(self, shell: Any, client: Callable[[], JobsClient], deliver: Callable[[int], list[str]],
                 poll: float = 0.25) -> None:
        self.shell, self._client, self._deliver, self.poll = shell, client, deliver, poll
        self.pending: dict[int, Pending] = {}
        self._refusal = _Refusal()

    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self.shell.ast_transformers.append(self._refusal)

    def unregister(self) -> None:
        self.shell.events.unregister("pre_run_cell", self.pre_run_cell)
        self.shell.events.unregister("post_run_cell", self.post_run_cell)
        self.shell.ast_transformers.remove(self._refusal)

    def expect(self, job: dict, names: list[str]) -> None:
        if names:
            self.pending[job["id"]] = Pending(job, names)

    def take(self, job_id: int) -> bool:
        """True (once) when the job's values are still to be delivered."""
        return self.pending.pop(job_id, None) is not None

    # -- the hook ------------------------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        if not self.pending:  # the common case: nothing to read, nothing to wait for
            return
        try:
            source = self.shell.transform_cell(info.raw_cell or "")
        except Exception:  # IPython will report it when it runs the cell
            return
        try:
            self.wait_for_names(loaded_names(source))
        except KeyboardInterrupt as exc:
            self._refusal.armed = f"raise KeyboardInterrupt({str(exc)!r})"
        except OutNotDelivered as exc:
            self._refusal.armed = ("raise __import__('jupyter_jobs.kernel.waiting', fromlist=['OutNotDelivered'])"
                                   f".OutNotDelivered({str(exc)!r}) from None")

    def post_run_cell(self, result: Any) -> None:
        self._refusal.armed = None  # a cell that did not parse never reached the transformer

    def wait_for_names(self, names: set[str] | list[str]) -> None:
        """Wait for the jobs that will deliver any of ``names`` and deliver their values.

        Raises :class:`OutNotDelivered` naming the job and what it did not deliver, and
        ``KeyboardInterrupt`` when the kernel is interrupted while waiting.
        """
        needed = set(names)
        for job_id, pending in sorted(self.pending.items()):
            wanted = [n for n in pending.names if n in needed]
            if not wanted:
                continue
            job = pending.job
            print(f"jupyter-jobs: waiting for job #{job_id} '{job['name']}' to deliver {', '.join(wanted)}; "
                  "interrupt to stop waiting", file=sys.stderr, flush=True)
            try:
                done = self.wait_for_job(job_id)
            except KeyboardInterrupt:
                raise KeyboardInterrupt(f"stopped waiting for job #{job_id} '{job['name']}': "
                                        f"{', '.join(wanted)} not delivered yet (%job fetch {job_id} loads them "
                                        "once it ends)") from None
            # Delivered here, unless the job's widget got there first.
            arrived = self._deliver(job_id) if self.take(job_id) else [n for n in wanted if n in self.shell.user_ns]
            missing = [n for n in wanted if n not in arrived]
            if missing:
                why = done.get("message") or done["status"]
                raise OutNotDelivered(f"job #{job_id} '{job['name']}' {done['status']} ({why}): {', '.join(missing)} "
                                      f"not delivered; see %job logs {job_id}")

    def wait_for_job(self, job_id: int) -> dict:
        """The job once it ended; a kernel interrupt (SIGINT) stops the wait even in a cell with top-level
        ``await``, whose SIGINT handler only cancels a future the blocked loop never gets to."""
        restore = None
        if threading.current_thread() is threading.main_thread():
            restore = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            while True:
                job = self._client().get(job_id)
                if job["status"] in TERMINAL:
                    return job
                time.sleep(self.poll)
        finally:
            if restore is not None:
                signal.signal(signal.SIGINT, restore)


__all__ = ["OutNotDelivered", "OutWaiter", "loaded_names", "out_names"]
