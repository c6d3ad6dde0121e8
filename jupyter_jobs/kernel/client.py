"""The kernel's client of the jobs API, and how a kernel finds the server that started it."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

from ..errors import BackendUnavailable, JobsError

TERMINAL = ("Succeeded", "Failed", "Cancelled", "Unknown")


class ApiError(JobsError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status


def find_kernel_server() -> dict[str, str]:
    """URL and token of the Jupyter server for this kernel.

    ``JUPYTER_JOBS_URL``/``JUPYTER_JOBS_TOKEN`` win; else the runtime file of the server that
    started this kernel (its parent process); else a running server whose root holds the cwd.
    """
    url = os.environ.get("JUPYTER_JOBS_URL")
    if url:
        return {"url": url, "token": os.environ.get("JUPYTER_JOBS_TOKEN", "")}
    from jupyter_core.paths import jupyter_runtime_dir
    from jupyter_server.serverapp import list_running_servers

    own = Path(jupyter_runtime_dir()) / f"jpserver-{os.getppid()}.json"
    if own.exists():
        info = json.loads(own.read_text())
        return {"url": info["url"], "token": info.get("token", "")}
    here = Path.cwd().resolve()
    for info in list_running_servers():
        root = Path(info.get("root_dir") or "/").resolve()
        if root == here or root in here.parents:
            return {"url": info["url"], "token": info.get("token", "")}
    raise JobsError(
        "no Jupyter server found for this kernel: run the notebook from Jupyter (Lab or Notebook), "
        "or set JUPYTER_JOBS_URL and JUPYTER_JOBS_TOKEN to the server's URL and token"
    )


class JobsClient:
    """Blocking calls to the jobs API (fine inside a cell); counts the bytes it uploads."""

    def __init__(self, url: str, token: str = "") -> None:
        self.url = url.rstrip("/") + "/jupyter-jobs/api/"
        self.token = token
        self.uploaded_bytes = 0
        self.uploaded_files = 0

    @classmethod
    def from_environment(cls) -> "JobsClient":
        return cls(**find_kernel_server())

    def request(self, method: str, path: str, body: Any = None, *, raw: bool = False,
                params: dict | None = None, data: bytes | None = None, timeout: float = 60) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        if data is None and body is not None:
            data = json.dumps(body).encode()
        if data is None and method in ("POST", "PUT"):
            data = b""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            try:
                message = json.loads(text).get("message", text)
            except ValueError:
                message = text[:300] or exc.reason
            raise ApiError(exc.code, message) from None
        except urllib.error.URLError as exc:
            raise BackendUnavailable(f"cannot reach the Jupyter server at {self.url}: {exc.reason}") from None
        if raw:
            return payload
        return json.loads(payload) if payload else None

    # -- jobs ------------------------------------------------------------------------------------
    def submit(self, spec: dict, files: dict[str, str] | None = None, environment: dict | None = None) -> dict:
        """Queue a job; ``files`` is a manifest of uploaded blobs, ``environment`` what this kernel's Python is
        (:func:`~jupyter_jobs.kernel.environment.envelope`), for a spec with ``env.python``."""
        if files is None and environment is None:
            return self.request("POST", "jobs", spec)
        body: dict = {"spec": spec}
        if files is not None:
            body["files"] = files
        if environment is not None:
            body["environment"] = environment
        return self.request("POST", "jobs", body)

    def get(self, job_id: int) -> dict:
        return self.request("GET", f"jobs/{job_id}")

    def list(self, **params: Any) -> dict:
        return self.request("GET", "jobs", params={k: v for k, v in params.items() if v is not None})

    def cancel(self, job_id: int) -> dict:
        return self.request("POST", f"jobs/{job_id}/cancel")

    def rerun(self, job_id: int, overrides: dict) -> dict:
        return self.request("POST", f"jobs/{job_id}/rerun", {"overrides": overrides})

    def create_schedule(self, body: dict) -> dict:
        """A schedule from ``{spec, cron, timezone?, files?, environment?, name?}`` (see ``POST /schedules``)."""
        return self.request("POST", "schedules", body)

    def log(self, job_id: int, offset: int = 0) -> bytes:
        return self.request("GET", f"jobs/{job_id}/logs", raw=True, params={"offset": offset})

    def displays(self, job_id: int, offset: int = 0) -> bytes:
        """The job's rich outputs from byte ``offset``: JSON lines of nbformat outputs (the last may be partial)."""
        return self.request("GET", f"jobs/{job_id}/displays", raw=True, params={"offset": offset})

    def output(self, job_id: int, path: str) -> bytes:
        return self.request("GET", f"jobs/{job_id}/outputs/{urllib.parse.quote(path)}", raw=True)

    def outputs(self, job_id: int) -> dict:
        return self.request("GET", f"jobs/{job_id}/outputs")

    def instance_types(self) -> list[dict]:
        return self.request("GET", "instance-types")["instance_types"]

    def datasets(self) -> list[dict]:
        return self.request("GET", "datasets")["datasets"]

    def follow(self, job_id: int, write: Callable[[str], None], offset: int = 0, poll: float = 0.2,
               show: Callable[[dict], None] | None = None) -> dict:
        """Write the log as it grows until the job ends, and pass each rich output to ``show`` as it
        arrives (made safe: :func:`~jupyter_jobs.kernel.displays.safe_output`); return the finished job."""
        import codecs

        from .displays import DisplayStream

        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stream = DisplayStream() if show is not None else None
        while True:
            job = self.get(job_id)
            chunk = self.log(job_id, offset)
            if chunk:
                offset += len(chunk)
                write(decoder.decode(chunk))
            shown = self._show_displays(job_id, stream, show)
            if job["status"] in TERMINAL and not chunk and not shown:
                tail = self.log(job_id, offset)  # written between the two calls
                if tail:
                    write(decoder.decode(tail, final=True))
                self._show_displays(job_id, stream, show)
                return job
            if not chunk and not shown:
                time.sleep(poll)

    def _show_displays(self, job_id: int, stream: Any, show: Callable[[dict], None] | None) -> bool:
        if stream is None or show is None or not stream.available:
            return False
        try:
            chunk = self.displays(job_id, stream.offset)
        except ApiError as exc:
            if exc.status_code == 404:  # a server without the displays route
                stream.available = False
                return False
            raise
        for output in stream.feed(chunk):
            show(output)
        return bool(chunk)

    # -- content-addressed upload ---------------------------------------------------------------
    def upload(self, files: dict[str, Path]) -> dict[str, str]:
        """Upload what the server lacks; return the manifest ``{relative path: sha256}``."""
        from .packaging import sha256_file

        manifest = {rel: sha256_file(path) for rel, path in files.items()}
        by_hash = {digest: files[rel] for rel, digest in manifest.items()}
        missing = self.request("POST", "blobs/missing", {"hashes": list(by_hash)})["missing"]
        for digest in missing:
            data = by_hash[digest].read_bytes()
            self.request("PUT", f"blobs/{digest}", data=data, timeout=600)
            self.uploaded_bytes += len(data)
            self.uploaded_files += 1
        return manifest
