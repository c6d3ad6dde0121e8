"""Package a cell or a project: ignore rules, a size cap, and the local modules a cell imports."""
from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import pathspec

from ..errors import TooLarge

#: Never shipped unless a .jobignore says otherwise (`!pattern`).
DEFAULT_IGNORES = (
    ".git/", "__pycache__/", "*.pyc", ".ipynb_checkpoints/", ".venv/", "venv/", "env/", ".env/",
    "node_modules/", ".mypy_cache/", ".pytest_cache/", ".tox/", "*.egg-info/", ".DS_Store",
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ignore_spec(root: Path) -> pathspec.PathSpec:
    lines = list(DEFAULT_IGNORES)
    for name in (".gitignore", ".jobignore"):  # .jobignore last: it can re-include
        path = root / name
        if path.is_file():
            lines += path.read_text().splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def collect_project(root: Path, max_bytes: int) -> dict[str, Path]:
    """The files of ``root`` to ship, ``{relative posix path: path}``, minus ignored ones."""
    root = root.resolve()
    spec = ignore_spec(root)
    files: dict[str, Path] = {}
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not spec.match_file((rel_folder / d).as_posix() + "/"))
        for name in sorted(names):
            rel = (rel_folder / name).as_posix()
            path = Path(folder) / name
            if not spec.match_file(rel) and path.is_file():
                files[rel] = path
    check_size(files, max_bytes, root)
    return files


def check_size(files: dict[str, Path], max_bytes: int, root: Path) -> None:
    sizes = sorted(((p.stat().st_size, rel) for rel, p in files.items()), reverse=True)
    total = sum(size for size, _ in sizes)
    if total > max_bytes:
        largest = ", ".join(f"{rel} ({size / 2**20:.1f} MiB)" for size, rel in sizes[:5])
        raise TooLarge(
            f"{root} holds {total / 2**20:.1f} MiB to ship, over the {max_bytes / 2**20:.0f} MiB cap; largest: "
            f"{largest}. Add them to .jobignore, or put data in a dataset."
        )


def imported_names(code: str) -> set[str]:
    """Top-level module names a piece of code imports (``import a.b`` -> ``a``)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def local_modules(code: str, folder: Path) -> dict[str, Path]:
    """Modules and packages beside the notebook that ``code`` imports, and what they import."""
    folder = folder.resolve()
    spec = ignore_spec(folder)
    found: dict[str, Path] = {}
    pending = list(imported_names(code))
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        module, package = folder / f"{name}.py", folder / name / "__init__.py"
        if module.is_file():
            found[module.name] = module
            pending += imported_names(module.read_text(errors="replace"))
        elif package.is_file():
            for path in sorted((folder / name).rglob("*")):
                rel = path.relative_to(folder).as_posix()
                if path.is_file() and not spec.match_file(rel):
                    found[rel] = path
                    if path.suffix == ".py":
                        pending += imported_names(path.read_text(errors="replace"))
    return found
