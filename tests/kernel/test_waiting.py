"""Run All in one kernel, without a server: a cell that reads a pending --out value waits for its job, a
failed job or an interrupt stops the cell with the reason, and other cells are not touched."""
import pickle

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_jobs.kernel.magics import JobMagics
from jupyter_jobs.kernel.waiting import OutNotDelivered, loaded_names

JOB = {"id": 12, "name": "train", "status": "Running", "message": ""}


class SlowJob:
    """A job that runs for ``polls`` polls, then ends with ``status`` having sent ``values``."""

    def __init__(self, polls=3, status="Succeeded", values=None, errors=None):
        self.polls, self.status, self.values, self.errors = polls, status, values or {}, errors or {}
        self.asked = 0

    def get(self, job_id):
        self.asked += 1
        if self.status is KeyboardInterrupt:
            raise KeyboardInterrupt
        done = self.asked > self.polls
        return {**JOB, "status": self.status if done else "Running", "message": "exited with code 1" if done else ""}

    def output(self, job_id, path):
        return pickle.dumps({**{k: pickle.dumps(v) for k, v in self.values.items()}, "__jj_errors__": self.errors})

    def upload(self, files):
        self.sent = {rel: path.read_bytes() for rel, path in files.items()}
        return {rel: "0" * 64 for rel in files}

    def submit(self, spec, manifest, environment=None):
        return {**JOB, "id": 13, "name": spec["name"]}

    def follow(self, job_id, write, **kwargs):
        return {**JOB, "id": job_id, "status": "Succeeded"}


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    magics = JobMagics(ip)
    magics.waiter.poll = 0.01
    ip.register_magics(magics)
    yield ip, magics
    magics.waiter.unregister()
    for name in ("model", "loss", "ran", "other"):
        ip.user_ns.pop(name, None)


def test_a_cell_that_reads_a_pending_value_waits_and_gets_it(shell, capsys):
    ip, magics = shell
    magics._client = SlowJob(values={"model": "M", "loss": 0.5})
    magics.waiter.expect(JOB, ["model", "loss"])
    assert ip.run_cell("other = 1").success and magics._client.asked == 0  # it does not read them
    result = ip.run_cell("ran = (model, loss)")
    assert result.success and ip.user_ns["ran"] == ("M", 0.5)
    assert "waiting for job #12 'train' to deliver model, loss; interrupt to stop waiting" in capsys.readouterr().err
    assert magics.waiter.pending == {} and magics._client.asked == 4
    ip.run_cell("ran = model")
    assert magics._client.asked == 4  # delivered: nothing pending, nothing asked


def test_a_failed_job_stops_the_cell_saying_what_did_not_arrive(shell, capsys):
    ip, magics = shell
    magics._client = SlowJob(status="Failed", values={"loss": 0.5}, errors={"model": "it cannot be serialised"})
    magics.waiter.expect(JOB, ["model", "loss"])
    result = ip.run_cell("ran = True\nprint(model)")
    assert isinstance(result.error_in_exec, OutNotDelivered) and "ran" not in ip.user_ns
    assert str(result.error_in_exec) == ("job #12 'train' Failed (exited with code 1): model not delivered; "
                                         "see %job logs 12")
    assert ip.user_ns["loss"] == 0.5  # what did arrive is kept
    assert "--out model did not arrive: it cannot be serialised" in capsys.readouterr().err
    assert ip.run_cell("ran = 2").success and ip.user_ns["ran"] == 2  # the next cell runs as written


def test_an_interrupt_stops_the_wait_and_the_cell(shell):
    ip, magics = shell
    magics._client = SlowJob(status=KeyboardInterrupt)
    magics.waiter.expect(JOB, ["model"])
    result = ip.run_cell("ran = True\nmodel")
    assert isinstance(result.error_in_exec, KeyboardInterrupt) and "ran" not in ip.user_ns
    assert "stopped waiting for job #12 'train'" in str(result.error_in_exec)
    assert 12 in magics.waiter.pending  # still to come: %job fetch 12, or the widget when it ends


def test_a_job_cell_sending_a_pending_value_waits_for_it(shell):
    ip, magics = shell
    magics._client = SlowJob(values={"model": "M"})
    magics.waiter.expect(JOB, ["model"])
    ip.run_cell_magic("job", "--in model --python none --wait", "print(model)")
    assert pickle.loads(magics._client.sent["_jj_in.pkl"]) == {"model": "M"} and magics.waiter.pending == {}


def test_with_nothing_pending_a_cell_is_not_even_read(shell, monkeypatch):
    ip, magics = shell
    monkeypatch.setattr(ip, "transform_cell", lambda cell: pytest.fail("the hook read a cell"))
    magics.waiter.pre_run_cell(type("Info", (), {"raw_cell": "model"})())


def test_the_names_a_cell_reads():
    assert loaded_names("a = b + c\nd += 1\ne = 1\nprint(f'{g}')") == {"b", "c", "d", "print", "g"}
    assert loaded_names("def (") == set()
