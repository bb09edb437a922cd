"""Enqueueing after commit, by task or by name: a lower layer starts a higher one's work without importing it."""

from __future__ import annotations

import logging

import pytest
from celery import current_app
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from common.tasks import enqueue_on_commit, registered_task
from devices.models import Device, StatusChange
from tests.factories import DeviceFactory, OSBuildFactory

pytestmark = pytest.mark.django_db


def test_a_task_named_by_a_lower_layer_runs_once_the_transaction_commits(django_capture_on_commit_callbacks):
    build = OSBuildFactory()
    device = DeviceFactory(
        model=build.model,
        current_build=None,
        reported_build_number=build.build_number,
        last_check_in_at=timezone.now(),
        compliance_status="unknown",
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_on_commit("updates.recompute_model", build.model_id, "catalogue", catch_up="the next sweep")
    assert len(callbacks) == 1
    assert Device.objects.get(pk=device.pk).current_build is None  # nothing before the commit
    callbacks[0]()  # the commit: the engine's task runs (eagerly in tests), found by its name
    device.refresh_from_db()
    assert device.current_build == build
    assert device.compliance_status != "unknown"  # a known build now: evaluated against the catalogue
    assert StatusChange.objects.filter(device=device, from_status="unknown", reason="catalogue").exists()


def test_every_task_name_the_lower_layers_use_is_registered():
    from fleet.services import RECOMPUTE_ORGANISATION_TASK
    from updates.services import RECOMPUTE_MODEL_TASK

    for name in (RECOMPUTE_MODEL_TASK, RECOMPUTE_ORGANISATION_TASK):
        assert registered_task(name) is not None, name
    assert "updates.sweep_compliance" in current_app.tasks and "fleet.dispatch_digests" in current_app.tasks


def test_a_name_no_task_has_is_sent_to_the_broker_by_name(monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit("elsewhere.some_task", 7, catch_up="nothing")
    assert sent == [("elsewhere.some_task", (7,))]


def test_with_the_broker_down_the_change_stands_and_the_log_says_what_catches_up(
    monkeypatch, caplog, django_capture_on_commit_callbacks
):
    task = registered_task("updates.recompute_model")

    def unreachable(*args: object) -> None:
        raise BrokerUnreachable("connection refused")

    monkeypatch.setattr(task, "delay", unreachable)
    with caplog.at_level(logging.WARNING, logger="common.tasks"), django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit("updates.recompute_model", 1, "x", catch_up="the next sweep")
    assert "updates.recompute_model" in caplog.text and "the next sweep will catch up" in caplog.text
