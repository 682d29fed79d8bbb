"""The app-server kinds and what each one allows: the one place a new kind is described for the rules."""

from __future__ import annotations

# What each kind serves; the first interface is its default.
INTERFACES = {"gunicorn": ("wsgi", "asgi"), "uwsgi": ("wsgi",), "uvicorn": ("asgi",), "daphne": ("asgi",),
              "hypercorn": ("asgi",)}
# Kinds whose web app is one process per worker, each started by the process manager on a socket it
# owns: they need a number of workers, and they are never recycled after max_requests (under load
# every process would reach the limit together).
PROCESS_PER_WORKER = ("uvicorn", "daphne", "hypercorn")
# Kinds with a master that forks and recycles its workers, and serves WSGI from threads.
MASTER_KINDS = ("gunicorn", "uwsgi")
