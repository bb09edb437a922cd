"""A web request has a deadline (WEB_REQUEST_DEADLINE_SECONDS): past it, a 503 with Retry-After, never a hang."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from django.test import Client

from common.db import with_statement_timeout
from common.deadline import DeadlineExceeded, deadline

pytestmark = pytest.mark.urls("tests.config.deadline_urls")


@pytest.fixture
def client() -> Client:
    """As a server answers: the test client would otherwise re-raise the interruption the 500 page logged."""
    return Client(raise_request_exception=False)


@pytest.fixture
def short_deadline(settings):
    settings.WEB_REQUEST_DEADLINE_SECONDS = 0.5
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.SECURE_SSL_REDIRECT = False
    return settings


def test_a_request_past_its_deadline_answers_503_with_retry_after_at_the_deadline(client: Client, short_deadline):
    started = time.monotonic()
    response = client.get("/slow/")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert b"did not answer in time" in response.content
    assert 0.5 <= elapsed < 1.5


def test_an_api_request_past_its_deadline_answers_json(client: Client, short_deadline):
    response = client.get("/api/v1/slow/")

    assert response.status_code == 503
    assert response.json() == {"detail": "A service this request needs did not answer in time; retry in a moment."}
    assert response["Retry-After"] == "10"


def test_code_that_catches_the_interruption_and_waits_again_is_interrupted_again(client: Client, short_deadline):
    started = time.monotonic()
    response = client.get("/stubborn/")

    assert response.status_code == 503
    assert time.monotonic() - started < 2


def test_a_request_within_its_deadline_is_answered_as_usual(client: Client, short_deadline):
    response = client.get("/slow/?seconds=0.1")

    assert response.status_code == 200
    assert response.json() == {"status": "done"}


def test_zero_turns_the_deadline_off(client: Client, short_deadline):
    short_deadline.WEB_REQUEST_DEADLINE_SECONDS = 0

    assert client.get("/slow/?seconds=0.8").status_code == 200


def test_outside_the_main_thread_nothing_is_armed():
    seen = {}

    def run() -> None:
        with deadline(0.1) as bound:
            time.sleep(0.3)
        seen["armed"], seen["expired"] = bound.armed, bound.expired

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=5)

    assert seen == {"armed": False, "expired": False}


def test_a_timer_armed_outside_the_block_is_put_back():
    """pytest-timeout and an outer deadline keep theirs: what remained of it, minus the block's time."""
    previous = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        with pytest.raises(DeadlineExceeded), deadline(0.2):
            time.sleep(2)
        remaining, _interval = signal.getitimer(signal.ITIMER_REAL)
        assert 29 < remaining < 30
        assert signal.getsignal(signal.SIGALRM) is signal.SIG_IGN
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("options", "seconds", "expected"),
    [
        ("", 10, "-c statement_timeout=10000"),
        ("-c search_path=fp", 0.5, "-c search_path=fp -c statement_timeout=500"),
        ("-c statement_timeout=1 -c search_path=fp", 900, "-c search_path=fp -c statement_timeout=900000"),
        ("-c statement_timeout=1", 0, ""),
    ],
)
def test_the_statement_timeout_joins_the_connection_options_once(options, seconds, expected):
    assert with_statement_timeout(options, seconds) == expected


def test_the_bound_names_the_code_it_interrupted():
    with pytest.raises(DeadlineExceeded), deadline(0.1) as bound:
        time.sleep(1)

    assert bound.expired and "tests" in bound.waiting_in and "psycopg" not in bound.waiting_in


@pytest.fixture
def database_backing_off(settings):
    import common.db

    settings.DATABASE_FAILURE_BACKOFF_SECONDS = 0.5
    common.db.mark_database_unavailable()
    yield
    common.db._unavailable_until, common.db._suspect = 0.0, False


@pytest.mark.django_db
def test_while_the_database_backs_off_requests_answer_503_at_once_then_ask_it_again(
    client: Client, short_deadline, database_backing_off
):
    started = time.monotonic()
    response = client.get("/api/v1/slow/?seconds=0")

    assert time.monotonic() - started < 0.2
    assert response.status_code == 503 and response["Retry-After"] == "10"
    assert response.json() == {"detail": "The database is unavailable; nothing was saved. Retry in a moment."}
    time.sleep(0.6)  # the backoff is over: a SELECT 1 answers, requests are served again
    assert client.get("/api/v1/slow/?seconds=0").status_code == 200
    assert client.get("/api/v1/slow/?seconds=0").status_code == 200
