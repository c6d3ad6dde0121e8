"""Property: any spec the parser accepts can be stored, read back, listed, rerun and deleted,
unchanged (issue 9, item 6: a 400 ms max-runtime was stored as "0s" and poisoned every list)."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_jobs.errors import SpecError
from jupyter_jobs.models import JobRecord
from jupyter_jobs.spec import apply_overrides, parse_spec
from jupyter_jobs.store import JobStore

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
texts = st.text(max_size=40)
scalars = st.one_of(texts, st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
paths = st.from_regex(r"[A-Za-z0-9_.-]{1,10}(/[A-Za-z0-9_.-]{1,10}){0,2}", fullmatch=True)
durations = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=0, max_value=2),
    st.integers(-5, 10**8),
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 5000), st.sampled_from(["ms", "s", "m", "h", "d"])),
    st.builds(lambda a, b: f"{a}h{b}m", st.integers(0, 99), st.integers(0, 99)),
    texts,
)
entries = st.one_of(paths, st.dictionaries(paths, names, min_size=1, max_size=1))
specs = st.fixed_dictionaries(
    {"cmd": st.one_of(texts, st.lists(texts, min_size=1, max_size=3))},
    optional={
        "name": texts, "desc": texts, "args": st.dictionaries(names, scalars, max_size=3),
        "env": st.fixed_dictionaries({"vars": st.dictionaries(names, scalars, max_size=3)}),
        "max-runtime": durations, "retries": st.integers(-2, 200), "priority": st.integers(-2000, 2000),
        "labels": st.dictionaries(texts, scalars, max_size=3), "working-dir": paths,
        "inputs": st.lists(entries, max_size=3), "outputs": st.lists(entries, max_size=3),
        "replicas": st.integers(0, 2000), "image": texts, "instance-type": texts,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=specs)
def test_any_accepted_spec_round_trips_through_the_store(tmp_path_factory, data):
    try:
        spec = parse_spec(data)
    except SpecError:
        return  # refused with a 400: nothing is stored
    store = JobStore(tmp_path_factory.mktemp("db") / "jobs.sqlite")
    try:
        stored = store.create(JobRecord(id=0, name=spec.name, owner="u", spec=spec, command=spec.cmd))
        assert not stored.damaged, stored.damaged
        assert store.get(stored.id).spec == spec
        # What the API shows is JSON, and reading that back gives the same spec.
        assert parse_spec(json.loads(json.dumps(spec.to_dict()))) == spec
        listed, _ = store.list()
        assert [r.id for r in listed] == [stored.id] and listed[0].spec == spec
        rerun = parse_spec(apply_overrides(stored.spec.to_dict(), {}))
        assert rerun == spec
        store.delete(stored.id)
        assert store.list()[0] == []
    finally:
        store.close()
