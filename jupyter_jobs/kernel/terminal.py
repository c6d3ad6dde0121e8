"""A job's log as a terminal shows it: a carriage return rewrites the line, so a tqdm bar is one line."""
from __future__ import annotations

import codecs
import re

#: Escape sequences a log may carry: CSI (colours, cursor moves) and OSC (titles, links).
_ESCAPE = re.compile(r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"([\r\n\b])")


class TerminalText:
    """The screen of a log fed in chunks (bytes split anywhere, even inside a UTF-8 character).

    ``\\r`` moves to the start of the line and what follows overwrites it, ``\\b`` moves back one,
    ``ESC[K`` erases the line (``ESC[2K``, IPython's ``clear_output``, all of it); other escape sequences
    (colours, cursor moves between lines) are dropped. Lines
    before the current one never change again, so a view need only redraw from :attr:`changed_from`.
    """

    def __init__(self) -> None:
        self.lines: list[str] = [""]
        self._column = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""  # an escape sequence cut at the end of a chunk
        #: The first line that changed since :meth:`take_changes` was last called.
        self.changed_from = 0

    def feed(self, chunk: bytes | str) -> None:
        text = self._pending + (self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk)
        cut = text.rfind("\x1b")
        if cut != -1 and cut > len(text) - 32 and not _ESCAPE.match(text, cut):
            text, self._pending = text[:cut], text[cut:]  # wait for the rest of the sequence
        else:
            self._pending = ""
        self.changed_from = min(self.changed_from, len(self.lines) - 1)
        position = 0
        for match in _ESCAPE.finditer(text):
            self._write(text[position:match.start()])
            if match.group(2) == "K":  # erase in line: 0 (or none) to its end, 1 to the cursor, 2 all of it
                line, mode = self.lines[-1], match.group(1) or "0"
                self.lines[-1] = {"1": " " * self._column + line[self._column:], "2": ""}.get(mode, line[:self._column])
            position = match.end()
        self._write(text[position:])

    def _write(self, text: str) -> None:
        for piece in _CONTROL.split(text):
            if piece == "\n":
                self.lines.append("")
                self._column = 0
            elif piece == "\r":
                self._column = 0
            elif piece == "\b":
                self._column = max(0, self._column - 1)
            elif piece:
                line = self.lines[-1]
                self.lines[-1] = line[:self._column] + piece + line[self._column + len(piece):]
                self._column += len(piece)

    def take_changes(self) -> int:
        """The first line changed since the last call (lines before it are as they were)."""
        first, self.changed_from = self.changed_from, len(self.lines) - 1
        return first

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


__all__ = ["TerminalText"]
