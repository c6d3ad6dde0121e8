"""Clients of the jobs API: a running Jupyter server over REST, or an embedded JobManager.

Both expose the same async methods, so the CLI (and later the kernel side) does not care
which one it has. ``find_server`` locates a running server the way Jupyter's own tools do.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .errors import BackendUnavailable, JobsError

API = "jupyter-jobs/api"


class ApiError(JobsError):
    """An error answered by the server, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status


def find_server(start_dir: Path | None = None) -> dict[str, Any] | None:
    """The running Jupyter server to use: ``JUPYTER_JOBS_URL``/``JUPYTER_JOBS_TOKEN`` first, then the
    runtime files of servers on this machine (one whose root contains ``start_dir`` preferred)."""
    url = os.environ.get("JUPYTER_JOBS_URL")
    if url:
        return {"url": url, "token": os.environ.get("JUPYTER_JOBS_TOKEN", ""), "root_dir": None}
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:  # pragma: no cover
        return None
    servers = list(list_running_servers())
    if not servers:
        return None
    here = (start_dir or Path.cwd()).resolve()

    def contains(server: dict[str, Any]) -> bool:
        root = Path(server.get("root_dir") or server.get("notebook_dir") or "/").resolve()
        return root == here or root in here.parents

    servers.sort(key=lambda s: not contains(s))
    return servers[0]


class RemoteClient:
    """The jobs API of a running Jupyter server."""

    kind = "server"

    def __init__(self, url: str, token: str = "", root_dir: str | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.root_dir = root_dir
        self.http = AsyncHTTPClient()

    def _request(self, method: str, path: str, params: dict | None = None, body: Any = None, **kw: Any) -> HTTPRequest:
        url = self.url + API + "/" + path
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        data = None if body is None else json.dumps(body)
        if method == "POST" and data is None:
            data = ""
        return HTTPRequest(url, method=method, headers=headers, body=data, **kw)

    async def call(self, method: str, path: str, params: dict | None = None, body: Any = None,
                   headers: dict | None = None) -> Any:
        request = self._request(method, path, params, body, request_timeout=120)
        request.headers.update(headers or {})
        try:
            response = await self.http.fetch(request)
        except HTTPClientError as exc:
            raise _api_error(exc) from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot reach the Jupyter server at {self.url}: {exc}") from None
        return json.loads(response.body) if response.body else None

    async def config(self) -> dict:
        return await self.call("GET", "config")

    async def submit(self, spec: dict, base_dir: str | None = None, idempotency_key: str | None = None,
                     files: dict[str, Path] | None = None) -> dict:
        """Submit ``spec``; with ``files`` (``{path in the job: local file}``) they are uploaded first, those
        the server lacks only, and the job gets exactly them (the server reads nothing of its own disk)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body: dict = {"spec": spec, "base_dir": base_dir}
        if files is not None:
            body = {"spec": spec, "files": await self.upload(files)}
        if _wants_environment(spec):  # this Python, as the environment of the job (env.python)
            body["environment"] = await self._environment()
        return await self.call("POST", "jobs", {"base_dir": base_dir} if files is None else None, body, headers)

    @staticmethod
    def wants_environment(spec: Any) -> bool:
        """Whether ``spec`` asks for this client's Python (``env.python: auto``): send :meth:`environment`."""
        return _wants_environment(spec)

    async def environment(self) -> dict:
        """This Python, as the environment of a job (``env.python``)."""
        return await self._environment()

    async def upload(self, files: dict[str, Path]) -> dict[str, str]:
        """Upload what the server lacks of ``files``, streamed from disk; the manifest ``{path: sha256}``."""
        from .kernel.packaging import sha256_file

        manifest = {name: await asyncio.to_thread(sha256_file, path) for name, path in files.items()}
        missing = set((await self.call("POST", "blobs/missing", body={"hashes": sorted(set(manifest.values()))}))["missing"])
        for name, digest in manifest.items():
            if digest in missing:
                await self._put_blob(digest, files[name])
                missing.discard(digest)
        return manifest

    async def _put_blob(self, digest: str, path: Path) -> None:
        async def produce(write: Callable[[bytes], Any]) -> None:
            with open(path, "rb") as handle:
                while chunk := await asyncio.to_thread(handle.read, 1 << 20):
                    await write(chunk)

        request = self._request("PUT", f"blobs/{digest}", request_timeout=3600, body_producer=produce)
        request.headers["Content-Type"] = "application/octet-stream"
        request.headers["Content-Length"] = str(path.stat().st_size)
        try:
            await self.http.fetch(request)
        except HTTPClientError as exc:
            raise _api_error(exc) from None

    async def outputs(self, job_id: int) -> dict:
        return await self.call("GET", f"jobs/{job_id}/outputs")

    async def download(self, job_id: int, path: str, dest: Path) -> None:
        """Output file ``path`` of the job into ``dest``, written beside it first and moved in whole."""
        partial = dest.with_name(f".{dest.name}.part")
        with open(partial, "wb") as handle:
            def write(chunk: bytes) -> None:  # tornado awaits what a callback returns, when it is not None
                handle.write(chunk)

            request = self._request("GET", f"jobs/{job_id}/outputs/{quote(path)}", request_timeout=3600,
                                    streaming_callback=write)
            try:
                await self.http.fetch(request)
            except HTTPClientError as exc:
                partial.unlink(missing_ok=True)
                raise _api_error(exc) from None
        os.replace(partial, dest)

    async def _environment(self) -> dict:
        """This Python's capture, interpreter and local packages' wheels (uploaded as blobs)."""
        from .kernel.environment import build_local, client_capture, sha256_file

        lock = client_capture()
        wheels: dict[str, str] = {}
        if lock.local:
            lock, paths = await asyncio.to_thread(build_local, lock)
            digests = {await asyncio.to_thread(sha256_file, p): p for p in paths}
            missing = (await self.call("POST", "blobs/missing", body={"hashes": list(digests)}))["missing"]
            for digest in missing:
                request = self._request("PUT", f"blobs/{digest}", request_timeout=600)
                request.body = await asyncio.to_thread(digests[digest].read_bytes)
                request.headers["Content-Type"] = "application/octet-stream"
                try:
                    await self.http.fetch(request)
                except HTTPClientError as exc:
                    raise _api_error(exc) from None
            wheels = {digest: path.name for digest, path in digests.items()}
        return {"lock": lock.to_dict(), "interpreter": sys.executable, "wheels": wheels}

    async def get(self, job_id: int) -> dict:
        return await self.call("GET", f"jobs/{job_id}")

    async def list(self, **params: Any) -> dict:
        return await self.call("GET", "jobs", params)

    async def cancel(self, job_id: int) -> dict:
        return await self.call("POST", f"jobs/{job_id}/cancel")

    async def rerun(self, job_id: int, overrides: dict) -> dict:
        return await self.call("POST", f"jobs/{job_id}/rerun", body={"overrides": overrides})

    async def delete(self, job_id: int) -> None:
        await self.call("DELETE", f"jobs/{job_id}")

    async def pin(self, job_id: int, pinned: bool = True) -> dict:
        return await self.call("POST", f"jobs/{job_id}/{'pin' if pinned else 'unpin'}")

    async def gc(self, dry_run: bool = False) -> dict:
        return await self.call("POST", "gc", {"dry_run": "1" if dry_run else "0"})

    async def environments(self) -> dict:
        return await self.call("GET", "environments")

    async def prune_environments(self, max_bytes: int | None = None) -> dict:
        return await self.call("POST", "environments/prune", body={} if max_bytes is None else {"max_bytes": max_bytes})

    async def secrets(self) -> dict:
        return await self.call("GET", "secrets")

    async def set_secret(self, name: str, value: str) -> dict:
        return await self.call("PUT", f"secrets/{quote(name, safe='')}", body={"value": value})

    async def delete_secret(self, name: str) -> None:
        await self.call("DELETE", f"secrets/{quote(name, safe='')}")

    async def stream_log(self, job_id: int, offset: int, follow: bool, sink: Callable[[bytes], None]) -> int:
        """Write the log from ``offset`` to ``sink``; reconnect from the last byte on a dropped
        connection. Returns the offset reached."""
        attempts = 0
        while True:
            received, status, refusal = 0, 0, bytearray()

            def on_header(line: str) -> None:
                nonlocal status
                if line.startswith("HTTP/"):
                    status = int(line.split()[1])

            def on_chunk(chunk: bytes) -> None:
                nonlocal received
                if status >= 400:  # the server's JSON error (a 404, a 410 Gone), not log bytes
                    refusal.extend(chunk[: 65536 - len(refusal)])
                    return
                received += len(chunk)
                sink(chunk)

            params = {"offset": str(offset), "follow": "1" if follow else "0"}
            request = self._request("GET", f"jobs/{job_id}/logs", params, streaming_callback=on_chunk,
                                    header_callback=on_header, request_timeout=0 if follow else 120)
            try:
                await self.http.fetch(request)
                return offset + received
            except HTTPClientError as exc:
                if exc.code != 599:
                    raise _api_error(exc, bytes(refusal)) from None
                error: Exception = exc
            except OSError as exc:
                error = exc
            offset += received
            attempts = 0 if received else attempts + 1
            if attempts > 5:
                raise BackendUnavailable(f"lost the log stream of job {job_id} at byte {offset}: {error}")
            await asyncio.sleep(min(5.0, 0.2 * 2**attempts))


def _api_error(exc: HTTPClientError, streamed: bytes = b"") -> ApiError:
    """The server's error; ``streamed``: its body, when a streaming callback received it instead of the response."""
    message, reason = exc.message or str(exc), None
    raw = streamed or (exc.response.body if exc.response is not None else b"")
    if raw:
        try:
            body = json.loads(raw)
            message, reason = body.get("message", message), body.get("reason")
        except (ValueError, AttributeError):  # not JSON, or not an object
            message = raw.decode("utf-8", "replace")[:500]
    if exc.code == 403 and reason != "Forbidden":  # Jupyter refused the request, not jupyter-jobs the action
        message += " (check the token: JUPYTER_JOBS_TOKEN or --token)"
    return ApiError(exc.code, message)


def _wants_environment(spec: Any) -> bool:
    from .kernel.environment import wants_environment

    return isinstance(spec, dict) and wants_environment(spec)


class EmbeddedClient:
    """Runs jobs in this process with the same JobManager a server would use."""

    kind = "embedded"

    def __init__(self, manager: Any, owner: str) -> None:
        self.manager = manager
        self.owner = owner

    async def __aenter__(self) -> "EmbeddedClient":
        await self.manager.start(housekeeping=False)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.manager.stop()

    def _json(self, job: Any) -> dict:
        return self.manager.job_json(job)

    async def config(self) -> dict:
        return self.manager.describe()

    async def submit(self, spec: dict, base_dir: str | None = None, idempotency_key: str | None = None,
                     files: dict[str, Path] | None = None) -> dict:
        manifest = None if files is None else await asyncio.to_thread(self._store, files)
        job, _ = await self.manager.submit(spec, owner=self.owner, base_dir=base_dir, idempotency_key=idempotency_key,
                                           files=manifest)
        return self._json(job)

    def _store(self, files: dict[str, Path]) -> dict[str, str]:
        """Put ``files`` in the manager's blob store, as an upload would; the manifest."""
        from .kernel.packaging import sha256_file

        manifest = {}
        for name, path in files.items():
            manifest[name] = digest = sha256_file(path)
            if not self.manager.blobs.has(digest):
                upload = self.manager.blobs.upload(digest, self.manager.max_input_bytes)
                try:
                    with open(path, "rb") as handle:
                        while chunk := handle.read(1 << 20):
                            upload.write(chunk)
                    upload.commit()
                finally:
                    upload.discard()
        return manifest

    async def outputs(self, job_id: int) -> dict:
        files = self.manager.folder(job_id).list_outputs()
        return {"outputs": files, "missing": []}

    async def download(self, job_id: int, path: str, dest: Path) -> None:
        fd, _ = self.manager.folder(job_id).open_output(path)
        partial = dest.with_name(f".{dest.name}.part")
        with os.fdopen(fd, "rb") as source, open(partial, "wb") as handle:
            while chunk := source.read(1 << 20):
                handle.write(chunk)
        os.replace(partial, dest)

    async def get(self, job_id: int) -> dict:
        return self._json(self.manager.get(job_id))

    async def list(self, **params: Any) -> dict:
        if params.get("owner") == "me":
            params["owner"] = self.owner
        params.pop("all_users", None)  # in this process there is one user, who sees every job
        params["limit"] = int(params.get("limit", 50))
        jobs, cursor = self.manager.list(**params)
        return {"jobs": [self._json(j) for j in jobs], "next_cursor": cursor}

    async def cancel(self, job_id: int) -> dict:
        return self._json(await self.manager.cancel(job_id, by=self.owner))

    async def rerun(self, job_id: int, overrides: dict) -> dict:
        return self._json(await self.manager.rerun(job_id, overrides, owner=self.owner))

    async def delete(self, job_id: int) -> None:
        await self.manager.delete(job_id)

    async def pin(self, job_id: int, pinned: bool = True) -> dict:
        return self._json(self.manager.pin(job_id, pinned))

    async def gc(self, dry_run: bool = False) -> dict:
        return await self.manager.retention.collect(dry_run=dry_run)

    async def environments(self) -> dict:
        return await self.manager.environments.report()

    async def prune_environments(self, max_bytes: int | None = None) -> dict:
        return await self.manager.environments.prune_and_report(max_bytes)

    async def secrets(self) -> dict:
        return {"secrets": self.manager.secrets.list(self.owner)}

    async def set_secret(self, name: str, value: str) -> dict:
        return self.manager.secrets.set(self.owner, name, value)[0]

    async def delete_secret(self, name: str) -> None:
        self.manager.secrets.delete(self.owner, name)

    async def stream_log(self, job_id: int, offset: int, follow: bool, sink: Callable[[bytes], None]) -> int:
        async for chunk in self.manager.follow_log(job_id, offset, follow):
            offset += len(chunk)
            sink(chunk)
        return offset

