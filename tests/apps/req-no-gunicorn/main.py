from fastapi import FastAPI

app = FastAPI(title="req-no-gunicorn")


@app.get("/")
def root() -> dict:
    return {"app": "req-no-gunicorn"}


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}
