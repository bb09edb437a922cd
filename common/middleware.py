"""A chunked request body, read as the client sent it or refused (issue #15).

A body sent with ``Transfer-Encoding: chunked`` has no ``Content-Length``; Django then reads it as empty
(its WSGI request limits the stream to the declared length, 0), so a chunked ``PATCH`` answered 200 having
changed nothing and a chunked check-in was read as ``{}``. This middleware reads such a body itself when the
server has de-chunked it and says where it ends (``wsgi.input_terminated``, which gunicorn and mod_wsgi set),
up to the body limit; a server that does not say so (``runserver``) gets a 411 Length Required naming the
header to send, rather than a body silently lost.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext


def body_limit(request: HttpRequest) -> int:
    """The API's body limit, or the admin's largest upload."""
    if request.path.startswith("/api/"):
        return settings.API_MAX_BODY_BYTES
    return settings.IMPORT_MAX_UPLOAD_BYTES


class ChunkedBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() and not meta.get("CONTENT_LENGTH"):
            refusal = self.read_chunked_body(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def read_chunked_body(self, request: HttpRequest) -> HttpResponse | None:
        limit = body_limit(request)
        stream = request.META.get("wsgi.input")
        if stream is None or request.META.get("wsgi.input_terminated") is not True:
            return JsonResponse(
                {
                    "detail": gettext(
                        "Send the request body with a Content-Length header: this server cannot read a chunked "
                        "body (Transfer-Encoding: chunked). The limit is %(limit)d bytes."
                    )
                    % {"limit": limit}
                },
                status=411,
            )
        # Bounded: one byte past the limit says the body is too large, without reading the rest of it.
        body = stream.read(limit + 1)
        if len(body) > limit:
            return JsonResponse(
                {"detail": gettext("The request body is larger than the limit of %(limit)d bytes.") % {"limit": limit}},
                status=413,
            )
        request.META["CONTENT_LENGTH"] = str(len(body))
        request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[attr-defined]
        return None
