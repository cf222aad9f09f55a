from fastapi import APIRouter

router = APIRouter()


@router.get("/")
def root() -> dict:
    return {"app": "launcher"}
