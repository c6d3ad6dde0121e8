"""The Lab log's terminal (labextension/src/terminal.ts, as built into labextension/lib), run by Node.js:
carriage returns, backspaces, line ends and ANSI escape sequences, also when a chunk cuts one in two."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BUILT = Path(__file__).resolve().parents[2] / "labextension" / "lib" / "terminal.js"
REQUIRED = os.environ.get("JUPYTER_JOBS_TEST_BROWSER") == "1"

# (chunks fed one after the other, the finished text, the line being written)
CASES = [
    (["\r 10%|#    |\r 50%|###  |\r100%|#####|\n"], "100%|#####|\n", ""),  # a tqdm bar: one line
    (["abcdef\rXY"], "", "XYcdef"),  # overwrites, as a terminal does; the rest of the line stays
    (["line\r\n", "next"], "line\n", "next"),  # \r\n ends the line, keeping it
    (["\x1b[32mgreen\x1b[0m plain\n"], "green plain\n", ""),  # colours dropped
    (["a\x1b[3", "2mb\n"], "ab\n", ""),  # an escape sequence cut by the chunk
    (["a\x1b", "[1;31mb\n"], "ab\n", ""),
    (["\x1b]0;title\x07x\n"], "x\n", ""),  # an OSC sequence (a window title)
    (["abc\b\bX\n"], "aXc\n", ""),  # backspace steps back
    (["50%\r", "\n"], "50%\n", ""),  # \r then \n in the next chunk
    (["hel", "lo\nwor", "ld"], "hello\n", "world"),
    (["1\n2\n3"], "1\n2\n", "3"),
]

SCRIPT = """
import { TerminalText } from %s;
const cases = JSON.parse(process.argv[1]);
console.log(JSON.stringify(cases.map(chunks => {
  const terminal = new TerminalText();
  let done = '', current = '';
  for (const chunk of chunks) {
    const step = terminal.feed(chunk);
    done += step.done;
    current = step.current;
  }
  return [done, current];
})));
"""


def test_terminal_text(tmp_path):
    node = shutil.which("node")
    if not node or not BUILT.exists():
        message = f"needs Node.js and the built extension ({BUILT}; pip install -e . builds it)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    module = tmp_path / "terminal.mjs"  # lib/ is ES modules in a package that does not say so
    shutil.copy(BUILT, module)
    result = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT % json.dumps(module.as_uri()), json.dumps([c for c, _, _ in CASES])],
        capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(result.stdout)
    assert got == [[done, current] for _, done, current in CASES]
