"""A job's rich outputs (``GET /jobs/{id}/displays``): JSON lines of nbformat outputs, made safe to show.

The job wrote them, so they are untrusted: a notebook shows what it itself produced as trusted (its HTML
runs scripts), so before one of these reaches a notebook, scripts, event handlers, frames and
``javascript:`` links are removed, and only MIME types that cannot run code are kept.
"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

#: MIME types shown as they are (none of them can run code in a front end).
SAFE_TYPES = frozenset({"text/plain", "image/png", "image/jpeg", "image/gif", "application/json", "text/latex"})
#: MIME types whose HTML is cleaned first.
HTML_TYPES = frozenset({"text/html", "text/markdown"})
_TAGS = frozenset("""a abbr b blockquote br caption code col colgroup dd del div dl dt em h1 h2 h3 h4 h5 h6 hr i img
    ins kbd li ol p pre q s samp small span strong sub sup table tbody td tfoot th thead tr u ul""".split())
_ATTRIBUTES = frozenset({"align", "alt", "border", "class", "colspan", "height", "href", "rowspan", "src", "title",
                         "valign", "width"})
_DROP_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template", "noscript", "svg", "math"})
_SAFE_URL = re.compile(r"^(https?:|mailto:|#|data:image/(png|jpeg|gif);)", re.IGNORECASE)


class _Cleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            self._dropping += 1
        if self._dropping or tag not in _TAGS:
            return
        kept = []
        for name, value in attrs:
            value = value or ""
            if name not in _ATTRIBUTES or (name in ("href", "src") and not _SAFE_URL.match(value.strip())):
                continue
            kept.append(f' {name}="{_escape(value)}"')
        self.out.append(f"<{tag}{''.join(kept)}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT:
            self._dropping = max(0, self._dropping - 1)
        elif not self._dropping and tag in _TAGS:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self.out.append(_escape(data))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def clean_html(text: str) -> str:
    """Only formatting tags and safe links remain (a DataFrame's table stays a table)."""
    cleaner = _Cleaner()
    cleaner.feed(text)
    cleaner.close()
    return "".join(cleaner.out)


def safe_output(output: dict[str, Any]) -> dict[str, Any] | None:
    """The output with only what cannot run code; None when nothing shows (or it is not an output)."""
    kind = output.get("output_type")
    if kind == "clear_output":
        return {"output_type": kind, "wait": bool(output.get("wait"))}
    if kind == "error":
        return {"output_type": kind, "ename": str(output.get("ename", "")), "evalue": str(output.get("evalue", "")),
                "traceback": [str(line) for line in output.get("traceback") or []]}
    if kind not in ("display_data", "execute_result", "update_display_data") or not isinstance(output.get("data"), dict):
        return None
    data: dict[str, Any] = {}
    for mime, value in output["data"].items():
        if mime in SAFE_TYPES:
            data[mime] = value
        elif mime in HTML_TYPES:
            data[mime] = clean_html("".join(value) if isinstance(value, list) else str(value))
    if not data:
        return None
    metadata = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    safe: dict[str, Any] = {"output_type": kind, "data": data, "metadata": metadata}
    if kind == "execute_result":
        safe["execution_count"] = output.get("execution_count")
    display_id = (output.get("transient") or {}).get("display_id")
    if display_id:
        safe["transient"] = {"display_id": str(display_id)}
    return safe


def adds_to_log(output: dict[str, Any]) -> bool:
    """Whether an output shows more than the job's log does: the job prints the text of each display,
    result and error to its log as terminal IPython does, so those with text only are there already."""
    if output["output_type"] == "clear_output":
        return True
    return output["output_type"] != "error" and bool(set(output.get("data") or {}) - {"text/plain"})


class DisplayStream:
    """Reads ``/displays`` in chunks: whole lines become outputs, a trailing partial line waits for the rest."""

    def __init__(self) -> None:
        #: The byte offset to ask for next.
        self.offset = 0
        #: False once the server said it has no displays route (an older server).
        self.available = True
        self._partial = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self.offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        outputs = []
        for line in lines:
            try:
                output = safe_output(json.loads(line))
            except (ValueError, AttributeError):  # a damaged line: skip it, keep the others
                continue
            if output is not None:
                outputs.append(output)
        return outputs


__all__ = ["DisplayStream", "adds_to_log", "clean_html", "safe_output"]
