"""How the CLI finds a team's service outside Jupyter (an SSH session on the box), and the token it keeps.

The service is named by ``$JUPYTER_JOBS_SERVICE_URL`` (a Hub sets it in every user's server, so its
terminals have it), else by a system config file ``jupyter_jobs_service.json`` in a Jupyter config
dir (``/etc/jupyter/``, or the environment's ``etc/jupyter/``): ``{"url": "https://hub.example/services/jupyter-jobs/"}``.

``jupyter jobs login`` keeps a Hub token (made on the Hub's Token page, with the service's access
scope) in ``<jupyter data dir>/jupyter_jobs/service-token``, 0600. Where a service is named the CLI
never runs jobs itself: that would be a second pool beside the team's, with its GPUs double-booked.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from jupyter_core.paths import jupyter_config_path, jupyter_data_dir

CONFIG_FILE = "jupyter_jobs_service.json"


def service_url() -> str:
    """The team service's URL, or ''."""
    url = os.environ.get("JUPYTER_JOBS_SERVICE_URL", "")
    if url:
        return url
    for folder in jupyter_config_path():
        path = Path(folder) / CONFIG_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not JSON with a url: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("url"), str) and data["url"]:
            return data["url"]
    return ""


def token_file() -> Path:
    return Path(jupyter_data_dir()) / "jupyter_jobs" / "service-token"


def stored_token() -> str:
    """The token ``jupyter jobs login`` kept, else the one a user's server has in its environment."""
    try:
        return token_file().read_text().strip()
    except OSError:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")


def store_token(token: str) -> Path:
    """Keep ``token`` for this user only (0600 in a 0700 folder)."""
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # a file kept from before is made private before the token is in it
    os.ftruncate(fd, 0)
    with os.fdopen(fd, "w") as handle:
        handle.write(token.strip() + "\n")
    return path
