"""Server side of the wire: validated bodies, the cluster secret, errors as JSON, size limits."""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from shinha.errors import RequestError
from shinha.wire import ErrorBody

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Largest body any request may carry (a scheduler part of 100,000 services fits).
MAX_BODY = 256 * 1024 * 1024
#: Largest body of requests from outside the cluster (receiver API): one batch of results.
MAX_CLIENT_BODY = 8 * 1024 * 1024


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json().encode(), status=status,
                        content_type="application/json")


def error_response(status: int, error: str, message: str, field: str | None = None
                   ) -> web.Response:
    body = ErrorBody(error=error, message=message, field=field)
    return web.Response(body=body.model_dump_json().encode(), status=status,
                        content_type="application/json")


async def read_model(request: web.Request, model: type[M], max_bytes: int = MAX_BODY) -> M:
    """Read and validate a JSON body; a bad one is a 400 naming the field at fault."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise RequestError(413, "too_large", f"body of {request.content_length} bytes; at "
                           f"most {max_bytes} accepted here")
    # StreamReader.read(n) returns what has arrived so far, not n bytes: read to the end.
    body = bytearray()
    try:
        while chunk := await request.content.read(1 << 20):
            body += chunk
            if len(body) > max_bytes:
                raise RequestError(413, "too_large", f"body over {max_bytes} bytes")
    except (BadHttpMessage, RequestPayloadError) as exc:
        # A body that does not decode (bad gzip, a broken chunk): the client's fault.
        raise RequestError(400, "invalid", f"body: cannot be read ({type(exc).__name__})"
                           ) from None
    except ConnectionError as exc:
        # The client left (or was closed for stalling) mid-body: nothing to log, nobody to
        # answer; the 400 goes nowhere.
        raise RequestError(400, "client_gone", f"the client left while sending its body "
                           f"({type(exc).__name__})") from None
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RequestError(400, "invalid", f"{field or 'body'}: {err['msg']}{more}",
                           field) from None


def check_secret(request: web.Request, secret: str) -> None:
    """Refuse (401) a request that does not carry the cluster secret; constant-time compare."""
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else ""
    # Headers arrive decoded with surrogate escapes: a non-UTF-8 one is a 401, not a 500.
    if not secret or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                             secret.encode()):
        raise RequestError(401, "unauthorized", "this endpoint needs the cluster secret "
                           "(Authorization: Bearer …)")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn our errors into JSON 4xx, and anything unexpected into a logged 500: no request
    can crash a daemon."""
    try:
        return await handler(request)
    except RequestError as exc:
        return error_response(exc.status, exc.error, str(exc), exc.field)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, "too_large", exc.text or "body too large")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (see the daemon's log)")


def make_app() -> web.Application:
    return web.Application(client_max_size=MAX_BODY, middlewares=[error_middleware])


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx
