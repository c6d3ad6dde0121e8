"""Notebook widgets: a live view of one job, and a form to submit one.

They update from a task on the kernel's own event loop, never from a thread (ipywidgets
breaks under ipykernel 7 when updated from plain threads: jupyter-widgets/ipywidgets#4001).
"""
from __future__ import annotations

import asyncio
import html
import json
import urllib.parse
from typing import Any, Callable

import ipywidgets as widgets
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..sizes import human
from .client import TERMINAL, ApiError, JobsClient
from .displays import DisplayStream, adds_to_log
from .terminal import TerminalText

COLOURS = {
    "Pending": "var(--jp-layout-color3, #9e9e9e)", "Preparing": "var(--jp-brand-color1, #1976d2)",
    "Running": "var(--jp-brand-color1, #1976d2)", "Succeeded": "var(--jp-success-color1, #388e3c)",
    "Failed": "var(--jp-error-color1, #d32f2f)", "Cancelled": "var(--jp-warn-color1, #f57c00)",
    "Unknown": "var(--jp-layout-color4, #6a1b9a)",
}


def _elapsed(job: dict) -> str:
    durations = job.get("durations") or {}
    seconds = durations.get("running")
    label = "running"
    if seconds is None:
        seconds, label = durations.get("queued") or 0, "queued"
    minutes, secs = divmod(int(seconds or 0), 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
    return f"{label} {text}"


class JobWidget(widgets.VBox):
    """Name, status badge, instance type, elapsed time, pending reason, live log, rich outputs, Cancel.

    The log only grows: it is a column of blocks of :data:`BLOCK_LINES` lines, and only the blocks whose
    lines changed are sent again, so the front end never redraws it all nor loses the scroll position;
    carriage returns rewrite the line as a terminal does (:class:`~.terminal.TerminalText`). Rich outputs
    (``/displays``) each get an ``Output`` widget as they arrive, so images and tables show as the cell
    would show them; ``update_display_data`` replaces its display, ``clear_output`` clears.
    """

    #: Lines per block of the log view.
    BLOCK_LINES = 100

    def __init__(self, client: JobsClient, job: dict, *, log_lines: int = 200, poll: float = 0.5,
                 on_done: Callable[[dict], None] | None = None) -> None:
        self.client, self.job, self.log_lines, self.poll, self.on_done = client, job, log_lines, poll, on_done
        self.terminal = TerminalText()
        self.stream = DisplayStream()
        #: The rich outputs shown now, in order (nbformat dicts, made safe).
        self.displayed: list[dict] = []
        self._display_ids: list[str | None] = []
        self._offset = 0
        self._clear_on_next = False
        self.header = widgets.HTML()
        self.message = widgets.HTML()
        # Grown to its full height (a box shrinks and scrolls by default), so that the box around it scrolls.
        self.log_blocks = widgets.VBox(layout=widgets.Layout(flex="0 0 auto", overflow="visible"))
        # column-reverse: the view follows the end while the user is at it, and stays where they scrolled.
        self.log_view = widgets.Box([self.log_blocks], layout=widgets.Layout(
            max_height="20em", overflow="auto", flex_flow="column-reverse"))
        self.displays_view = widgets.VBox()
        self.show_all = widgets.ToggleButton(description="Show whole log", value=False, icon="align-justify",
                                             layout=widgets.Layout(width="auto"))
        self.cancel_button = widgets.Button(description="Cancel", button_style="danger", icon="stop",
                                            layout=widgets.Layout(width="auto"))
        self.outputs_view = widgets.HTML()
        self.show_all.observe(lambda _: self._show_blocks(), "value")
        self.cancel_button.on_click(self._cancel)
        super().__init__([self.header, self.message, self.log_view, self.displays_view,
                          widgets.HBox([self.cancel_button, self.show_all]), self.outputs_view])
        self.add_class("jp-JobsWidget")
        self._render()
        self._show_blocks()
        self._task: asyncio.Task | None = None

    @property
    def log_text(self) -> str:
        """The log as a terminal would show it now."""
        return self.terminal.text

    # -- updating --------------------------------------------------------------------------
    def start(self) -> "JobWidget":
        """Follow the job from a task on the running (kernel's) event loop."""
        self._task = asyncio.ensure_future(self._follow())
        return self

    async def wait(self) -> dict:
        """The job once it has ended (``await widget.wait()`` in a cell)."""
        if self._task is None:
            self.start()
        assert self._task is not None
        await asyncio.shield(self._task)
        return self.job

    async def _fetch(self, path: str, params: dict | None = None) -> bytes:
        url = self.client.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Authorization": f"token {self.client.token}"} if self.client.token else {}
        response = await AsyncHTTPClient().fetch(HTTPRequest(url, headers=headers, request_timeout=30))
        return response.body

    async def _displays(self) -> bytes:
        if not self.stream.available:
            return b""
        try:
            return await self._fetch(f"jobs/{self.job['id']}/displays", {"offset": self.stream.offset})
        except HTTPClientError as exc:
            if exc.code != 404:
                raise
            self.stream.available = False  # a server without the displays route
            return b""

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                self.job = json.loads(await self._fetch(f"jobs/{self.job['id']}"))
                chunk = await self._fetch(f"jobs/{self.job['id']}/logs", {"offset": self._offset})
                shown = await self._displays()
                failures = 0
            except Exception as exc:  # the server restarting: keep the last view, say why, retry
                failures += 1
                self.message.value = f"<i>cannot reach the server ({html.escape(str(exc))}); retrying</i>"
                await asyncio.sleep(min(10.0, self.poll * 2**failures))
                continue
            if chunk:
                self._offset += len(chunk)
                self.terminal.feed(chunk)
            for output in self.stream.feed(shown):
                if adds_to_log(output):
                    self.show_output(output)
            self._render()
            if self.job["status"] in TERMINAL and not chunk and not shown:
                await self._finish()
                return
            if not chunk and not shown:
                await asyncio.sleep(self.poll)

    async def _finish(self) -> None:
        try:
            listing = json.loads(await self._fetch(f"jobs/{self.job['id']}/outputs"))
        except Exception:
            listing = {"outputs": []}
        self._render_outputs(listing["outputs"])
        self.cancel_button.disabled = True
        if self.on_done is not None:
            self.on_done(self.job)

    # -- rich outputs ----------------------------------------------------------------------
    def show_output(self, output: dict) -> None:
        """Show one output as the cell would (it was made safe by :func:`~.displays.safe_output`)."""
        kind = output["output_type"]
        if kind == "clear_output":
            if output["wait"]:
                self._clear_on_next = True
            else:
                self._clear()
            return
        if self._clear_on_next:
            self._clear()
        display_id = (output.get("transient") or {}).get("display_id")
        if kind == "update_display_data":
            shown = {**output, "output_type": "display_data"}
            for index, view in enumerate(self.displays_view.children):
                if display_id and self._display_ids[index] == display_id:
                    view.outputs = (shown,)
                    self.displayed[index] = shown
            return
        view = widgets.Output()
        view.outputs = (output,)
        self.displayed.append(output)
        self._display_ids.append(display_id)
        self.displays_view.children = (*self.displays_view.children, view)  # the others stay as they are

    def _clear(self) -> None:
        self._clear_on_next = False
        for view in self.displays_view.children:
            view.close()
        self.displays_view.children = ()
        self.displayed, self._display_ids = [], []

    # -- rendering -------------------------------------------------------------------------
    def _render(self) -> None:
        job = self.job
        status = job["status"]
        badge = (f'<span style="background:{COLOURS.get(status, "gray")};color:white;border-radius:3px;'
                 f'padding:1px 6px;font-size:90%">{status}</span>')
        self.header.value = (
            f"<b>{html.escape(job['name'])}</b> <code>#{job['id']}</code> {badge} "
            f"<span style='opacity:.75'>{html.escape(job.get('instance_type') or '')} · {_elapsed(job)}</span>"
        )
        message = job.get("message") or ""
        self.message.value = f"<span style='opacity:.85'>{html.escape(message)}</span>" if message not in (status, "") else ""
        self.cancel_button.disabled = status in TERMINAL
        self._render_log()

    def _render_log(self) -> None:
        """Send again only the blocks holding lines that changed."""
        lines = self.terminal.lines
        if lines[-1] == "":
            lines = lines[:-1]  # the log ends with a newline: no empty line under it
        first = self.terminal.take_changes() // self.BLOCK_LINES
        blocks = list(self.log_blocks.children)
        for index in range(first, max(first, (len(lines) - 1) // self.BLOCK_LINES + 1)):
            text = html.escape("\n".join(lines[index * self.BLOCK_LINES:(index + 1) * self.BLOCK_LINES]))
            value = f"<pre style='margin:0;font-size:var(--jp-code-font-size,12px)'>{text}</pre>"
            if index < len(blocks):
                blocks[index].value = value
            else:
                blocks.append(widgets.HTML(value))
        if len(blocks) != len(self.log_blocks.children):
            self.log_blocks.children = tuple(blocks)  # appended: the blocks before keep their views
            self._show_blocks()

    def _show_blocks(self) -> None:
        """Blocks past the last ``log_lines`` lines are hidden (not removed) unless the whole log is asked for."""
        blocks = self.log_blocks.children
        keep = len(blocks) if self.show_all.value else -(-self.log_lines // self.BLOCK_LINES) + 1
        for index, block in enumerate(blocks):
            block.layout.display = "" if index >= len(blocks) - keep else "none"
        self.show_all.layout.display = "" if len(blocks) > keep or self.show_all.value else "none"

    def _render_outputs(self, outputs: list[dict]) -> None:
        """A link to each output file, one to each folder (a tar of it) and one to all of them (a tar)."""
        files = [o for o in outputs if o.get("type") != "symlink"]
        if not files:
            self.outputs_view.value = ""
            return
        base = files[0]["url"][: -len(files[0]["path"])]  # .../jobs/ID/outputs/
        folders: dict[str, list[dict]] = {}
        links = []
        for item in files:
            top, sep, _ = item["path"].partition("/")
            if sep:
                folders.setdefault(top, []).append(item)
            else:
                links.append(_link(item["url"], item["path"], human(item["size"])))
        for top, inside in folders.items():
            count = f"{len(inside)} file{'s' * (len(inside) != 1)}, {human(sum(i['size'] for i in inside))}"
            links.append(_link(base + urllib.parse.quote(top), f"{top}/", f"{count}, one .tar"))
        everything = _link(base.rstrip("/") + "?archive=tar", "all", "one .tar") if len(files) > 1 else ""
        self.outputs_view.value = f"outputs: {', '.join(links)}" + (f" · {everything}" if everything else "")

    def _cancel(self, _button: Any = None) -> None:
        self.cancel_button.disabled = True
        try:
            self.job = self.client.cancel(self.job["id"])
        except ApiError as exc:
            self.message.value = f"<span style='color:var(--jp-error-color1)'>{html.escape(exc.message)}</span>"
        self._render()


class JobForm(widgets.VBox):
    """Submit a job: instance types and datasets come from the server as choices."""

    def __init__(self, client: JobsClient | None = None) -> None:
        self.client = client or JobsClient.from_environment()
        types = self.client.instance_types()
        default = next((t["name"] for t in types if t.get("default")), types[0]["name"] if types else None)
        style = {"description_width": "8em"}
        self.name = widgets.Text(description="Name", value="job", style=style)
        self.command = widgets.Textarea(description="Command", placeholder="python train.py", style=style)
        self.instance_type = widgets.Dropdown(
            description="Instance", options=[(f"{t['name']} ({t.get('description') or ''})", t["name"]) for t in types],
            value=default, style=style)
        self.datasets = widgets.SelectMultiple(
            description="Datasets", options=[d["name"] for d in self.client.datasets()], style=style)
        self.image = widgets.Text(description="Image", placeholder="(default)", style=style)
        self.env = widgets.Textarea(description="Env", placeholder="NAME=value, one a line", style=style)
        self.max_runtime = widgets.Text(description="Max runtime", placeholder="e.g. 2h", style=style)
        self.submit_button = widgets.Button(description="Submit", button_style="primary", icon="play")
        self.error = widgets.HTML()
        self.result = widgets.VBox()
        self.submit_button.on_click(self.submit)
        super().__init__([self.name, self.command, self.instance_type, self.datasets, self.image, self.env,
                          self.max_runtime, self.submit_button, self.error, self.result])

    def spec(self) -> dict:
        spec: dict[str, Any] = {"name": self.name.value, "cmd": self.command.value, "instance-type": self.instance_type.value}
        if self.datasets.value:
            spec["datasets"] = list(self.datasets.value)
        if self.image.value.strip():
            spec["image"] = self.image.value.strip()
        env = [line.strip() for line in self.env.value.splitlines() if line.strip()]
        if env:
            spec["env"] = {"vars": env}
        if self.max_runtime.value.strip():
            spec["max-runtime"] = self.max_runtime.value.strip()
        return spec

    def submit(self, _button: Any = None) -> dict | None:
        """Submit the form; the server's validation message is shown, never swallowed."""
        try:
            job = self.client.submit(self.spec())
        except ApiError as exc:
            self.error.value = f"<pre style='color:var(--jp-error-color1)'>{html.escape(exc.message)}</pre>"
            return None
        self.error.value = ""
        self.result.children = [JobWidget(self.client, job).start()]
        return job


__all__ = ["JobWidget", "JobForm"]


def _link(url: str, text: str, note: str) -> str:
    return f"<a href='{html.escape(url)}' target='_blank' download>{html.escape(text)}</a> ({html.escape(note)})"
