"""The CI engine scripts trust only engines of their own."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def setting(conf: Path, name: str) -> str:
    """What the controller that answers for ``conf`` reports for ``name``."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "SLURM_CONF": str(conf)}).stdout
    match = re.search(rf"^{name}\s*=\s*(.*)$", out, re.MULTILINE)
    return match.group(1).strip() if match else ""


def free_from(port: int) -> int:
    """The first port from ``port`` that nothing holds, on 127.0.0.1 or on every address."""
    while True:
        try:
            for host in ("127.0.0.1", ""):
                with socket.socket() as probe:
                    probe.bind((host, port))
            return port
        except OSError:
            port += 1


@pytest.mark.slurm  # runs beside the suite's own Slurm, which holds the first ports
@pytest.mark.skipif(os.geteuid() != 0, reason="starts Slurm daemons (root)")
def test_slurm_engine_starts_its_own_cluster_on_free_ports_and_reuses_it(tmp_path):
    home = tmp_path / "slurm"
    taken = free_from(6817)  # the port the script would try first: an unrelated server holds it
    squatter = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(taken)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "JJ_SLURM_DIR": str(home)}
    try:
        deadline = time.monotonic() + 10
        while free_from(taken) == taken and time.monotonic() < deadline:
            time.sleep(0.05)
        first = subprocess.run(["bash", str(REPO / ".ci" / "slurm-engine.sh")], env=env, capture_output=True,
                               text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        conf = Path(first.stdout.strip())
        assert conf == home / "slurm.conf"
        # The controller that answers is this script's, not the suite's nor any other on this machine.
        assert setting(conf, "SLURM_CONF") == str(conf)
        assert setting(conf, "ClusterName") != setting(Path(os.environ["SLURM_CONF"]), "ClusterName")
        ports = {int(p) for p in re.findall(r"Port=(\d+)", conf.read_text())}
        assert len(ports) == 3 and taken not in ports
        pids = {f.name: f.read_text() for f in home.glob("*.pid")}
        assert sorted(pids) == ["slurmctld.pid", "slurmd-jj1.pid", "slurmd-jj2.pid"]
        # Run again: the same daemons, kept.
        again = subprocess.run(["bash", str(REPO / ".ci" / "slurm-engine.sh")], env=env, capture_output=True,
                               text=True, timeout=120)
        assert (again.returncode, again.stdout) == (0, first.stdout), again.stderr
        assert {f.name: f.read_text() for f in home.glob("*.pid")} == pids
    finally:
        squatter.terminate()
        squatter.wait(timeout=10)
        for pidfile in home.glob("*.pid"):  # this test's daemons only, by their pid files
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
