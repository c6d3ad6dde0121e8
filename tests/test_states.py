"""The state machine: only the moves in TRANSITIONS are allowed."""
import pytest

from jupyter_jobs.errors import InvalidTransition
from jupyter_jobs.states import TERMINAL, TRANSITIONS, JobStatus, check_transition, parse_status


def test_terminal_states_have_no_way_out():
    for status in TERMINAL:
        assert status.is_terminal()
        assert TRANSITIONS[status] == frozenset()
        with pytest.raises(InvalidTransition, match=f"is {status.value}"):
            check_transition(1, status, JobStatus.RUNNING)


@pytest.mark.parametrize("current, new", [
    (JobStatus.PENDING, JobStatus.PREPARING), (JobStatus.PENDING, JobStatus.CANCELLED),
    (JobStatus.PREPARING, JobStatus.RUNNING), (JobStatus.RUNNING, JobStatus.SUCCEEDED),
    (JobStatus.RUNNING, JobStatus.PENDING),  # retry
    (JobStatus.PREPARING, JobStatus.PENDING),  # restart while preparing
])
def test_allowed(current, new):
    check_transition(1, current, new)


@pytest.mark.parametrize("current, new", [
    (JobStatus.PENDING, JobStatus.RUNNING), (JobStatus.PENDING, JobStatus.SUCCEEDED),
    (JobStatus.PREPARING, JobStatus.SUCCEEDED),
])
def test_refused(current, new):
    with pytest.raises(InvalidTransition):
        check_transition(1, current, new)


def test_parse_status_is_case_insensitive():
    assert parse_status("running") is JobStatus.RUNNING
    with pytest.raises(ValueError, match="use one of"):
        parse_status("STOPPED")
