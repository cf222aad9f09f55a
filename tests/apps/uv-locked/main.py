from fastapi import FastAPI

app = FastAPI(title="uv-locked")


@app.get("/")
def root() -> dict:
    return {"app": "uv-locked"}
