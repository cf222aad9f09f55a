from fastapi import FastAPI


def create_app() -> FastAPI:
    application = FastAPI()

    @application.get("/")
    def root() -> dict:
        return {"app": "monorepo"}

    return application


app = create_app()
