"""Sizes as people read them."""
from __future__ import annotations


def human(size: float) -> str:
    """``5000`` -> ``4.9 KiB`` (powers of 1024, as memory and disk sizes are shown elsewhere)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
