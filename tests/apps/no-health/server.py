"""A Starlette app with one route and no health endpoint."""
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def homepage(request):
    return JSONResponse({"app": "no-health"})


app = Starlette(routes=[Route("/", homepage)])
