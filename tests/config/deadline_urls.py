"""Views that wait like a request stuck on a frozen dependency, for the request deadline's tests."""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from common.deadline import DeadlineExceeded


def slow(request: HttpRequest) -> HttpResponse:
    time.sleep(float(request.GET.get("seconds", "5")))
    return JsonResponse({"status": "done"})


def stubborn(request: HttpRequest) -> HttpResponse:
    """Catches the first interruption (as a rollback or a retry loop would) and waits again."""
    try:
        time.sleep(5)
    except DeadlineExceeded:
        time.sleep(5)
    return JsonResponse({"status": "done"})


urlpatterns = [
    path("slow/", slow),
    path("stubborn/", stubborn),
    path("api/v1/slow/", slow),
]
