"""Python environments for jobs: the notebook's packages, rebuilt once per content hash.

:mod:`.lock` captures the environment a client runs in and names it by a hash, :mod:`.spec` reads a
spec's ``env.python``, and :mod:`.cache` builds one virtual environment per hash with uv and evicts the
least recently used ones. Nothing here knows about jobs, backends or the manager: they call in.
"""
from .cache import EnvironmentCache, EnvironmentInfo
from .lock import LocalPackage, Lock, Pin, capture, normalise_name
from .spec import PythonEnv, parse_python_env

__all__ = [
    "EnvironmentCache",
    "EnvironmentInfo",
    "LocalPackage",
    "Lock",
    "Pin",
    "PythonEnv",
    "capture",
    "normalise_name",
    "parse_python_env",
]
