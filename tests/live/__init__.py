"""Live tests: the rendered stack (nginx, gunicorn or uvicorn, supervisord, Django) run for real on loopback.

A package, so its modules import as ``live.*`` (the benchmark, tests/bench.py, uses them too) and its
conftest.py does not take the module name ``conftest`` from tests/conftest.py.
"""
