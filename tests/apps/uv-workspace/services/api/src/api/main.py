from fastapi import FastAPI
from shared.greeting import hello

app = FastAPI()

@app.get("/health")
def health():
    return {"ok": hello()}
