from fastapi import FastAPI
from pydantic import BaseModel


class Item(BaseModel):
    name: str


app = FastAPI(title="shop")


@app.get("/")
def root() -> dict:
    return {"app": "pyproject-src"}


@app.get("/items/{name}")
def item(name: str) -> Item:
    return Item(name=name)
