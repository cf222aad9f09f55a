from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root() -> dict:
    return {"app": "gunicorn-conf"}
