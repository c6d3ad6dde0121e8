"""Tests marked ``index`` install real packages; they skip with uv's reason when the index is out of reach."""
from __future__ import annotations

import functools
import subprocess

import pytest


@functools.cache
def index_missing() -> str | None:
    """Why uv cannot install from the package index here, or None when it can."""
    from uv import find_uv_bin

    try:
        result = subprocess.run([find_uv_bin(), "pip", "compile", "--no-cache", "--no-header", "-"], input="six\n",
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"uv cannot reach the package index: {exc}"
    if result.returncode != 0:
        return f"uv cannot reach the package index: {result.stderr.strip()[-500:]}"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("index") is not None and index_missing():
        pytest.skip(index_missing())
