"""The example backend: a FastAPI app served by gunicorn with an Uvicorn worker.

`/health` also says which server runs it, so tests (and people) can tell the proven
gunicorn + UvicornWorker setup from a bare `uvicorn` that drifted in.
"""

import os
import sys

from fastapi import FastAPI

app = FastAPI(title="ctxbuild example backend")


def _server() -> dict:
    """Names the process manager and the worker class serving this process."""
    if "uvicorn_worker" in sys.modules:
        worker = "uvicorn_worker.UvicornWorker"
    elif "uvicorn.workers" in sys.modules:
        worker = "uvicorn.workers.UvicornWorker"
    else:
        worker = None
    return {
        "server": "gunicorn" if "gunicorn" in sys.modules else "uvicorn",
        "worker": worker,
        "pid": os.getpid(),
    }


@app.get("/health")
def health() -> dict:
    return {"status": "ok", **_server()}


@app.get("/items/{item_id}")
def read_item(item_id: int, q: str | None = None) -> dict:
    return {"item_id": item_id, "q": q}
