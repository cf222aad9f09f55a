"""The API, inside the `app` package."""
from fastapi import FastAPI

app: FastAPI = FastAPI(
    title="fastapi-standard",
    version="1.0",
)


@app.get("/")
async def root() -> dict:
    return {"app": "fastapi-standard"}
