"""The runner pool and the backends that run jobs."""
