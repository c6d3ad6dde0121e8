"""The notebook's view of a job: one display bundle that every front end can show.

JupyterLab with jupyter-jobs renders :data:`JOB_MIME` itself, live from the server, so the view
survives kernel restarts and reopened notebooks; front ends without it (classic Notebook, VS Code)
show the JobWidget (its widget view); a plain-text one says what the job was and how to get it back.
"""
from __future__ import annotations

from typing import Any

JOB_MIME = "application/vnd.jupyter-jobs.job+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def plain_text(job: dict, out: list[str]) -> str:
    text = f"Job #{job['id']} '{job['name']}' — %job attach {job['id']} shows it"
    if out:
        text += f"; %job fetch {job['id']} loads its --out values ({', '.join(out)})"
    return text


class JobView:
    """``display(JobView(job, out, widget))`` shows the job as one output: ours, the widget's, and text."""

    def __init__(self, job: dict, out: list[str], widget: Any = None) -> None:
        self.job, self.out, self.widget = job, list(out), widget

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            JOB_MIME: {"id": self.job["id"], "name": self.job["name"], "out": self.out},
            "text/plain": plain_text(self.job, self.out),
        }
        widget_bundle = self.widget._repr_mimebundle_() if getattr(self.widget, "_repr_mimebundle_", None) else None
        if widget_bundle and WIDGET_MIME in widget_bundle:
            bundle[WIDGET_MIME] = widget_bundle[WIDGET_MIME]
        return bundle

    def __repr__(self) -> str:
        return plain_text(self.job, self.out)


__all__ = ["JOB_MIME", "JobView", "plain_text"]
