"""Local entry point: `python main.py`."""
import os

import uvicorn

if __name__ == "__main__":
    uvicorn.run(
        "service.api:app",
        host="0.0.0.0",
        port=int(os.environ.get("PORT", "8000")),
        reload=True,
    )
