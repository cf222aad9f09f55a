"""The example auth service: issues and verifies short-lived HMAC-signed tokens.

Small but real: the signing key comes from the environment (never from the image), tokens
expire, and verification is constant-time. `/health` is what Cloud Run and the HEALTHCHECK probe.
"""

import base64
import hashlib
import hmac
import json
import os
import time

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI(title="ctxbuild example auth")

TOKEN_TTL_SECONDS = 900


def _key() -> bytes:
    # A per-process random key when none is configured: tokens then only verify on this instance.
    key = os.environ.get("AUTH_SIGNING_KEY")
    if key:
        return key.encode()
    global _RANDOM_KEY
    try:
        return _RANDOM_KEY
    except NameError:
        _RANDOM_KEY = os.urandom(32)
        return _RANDOM_KEY


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(subject: str, now: float | None = None) -> str:
    claims = {"sub": subject, "exp": int((now or time.time()) + TOKEN_TTL_SECONDS)}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64(hmac.new(_key(), body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}"


def verify(token: str, now: float | None = None) -> dict:
    try:
        body, sig = token.split(".")
        expected = _b64(hmac.new(_key(), body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(sig, expected):
            raise ValueError("bad signature")
        claims = json.loads(_unb64(body))
    except ValueError as e:
        raise HTTPException(status_code=401, detail="invalid token") from e
    if claims["exp"] < (now or time.time()):
        raise HTTPException(status_code=401, detail="token expired")
    return claims


class Login(BaseModel):
    username: str


class Token(BaseModel):
    token: str


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/token")
def token(login: Login) -> Token:
    return Token(token=issue(login.username))


@app.post("/verify")
def check(body: Token) -> dict:
    return verify(body.token)
