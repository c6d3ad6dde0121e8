"""Tests marked ``index`` install real packages: they skip with uv's reason when the index is out of reach,
and fail in CI (JUPYTER_JOBS_TEST_INDEX=1); see ``tests/conftest.py``."""
