"""Live tests: the rendered stack (nginx, gunicorn or uvicorn, supervisord, Django) run for real on loopback.

A package so that this folder's conftest.py is imported as ``live.conftest`` and does not shadow
``tests/conftest.py`` (``from conftest import require_tool``) for the rest of the suite.
"""
