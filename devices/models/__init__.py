"""Devices, what they report (check-ins), their batteries, and the history of their compliance; and what the
compliance engine records of its own work: the rollout curves (BuildRollout) and the sweeps (SweepRun, SweepRange),
which moved here from updates and keep their tables. One module per subject; everything is importable from here."""

from devices.models.checkins import CheckIn
from devices.models.device import Device
from devices.models.history import BatteryEvent, StatusChange, Waiver
from devices.models.identity import DeviceSourceId
from devices.models.jobs import ImportJob, SweepRange, SweepRun, TaskDelivery
from devices.models.observed import ObservedBuild
from devices.models.rejections import PubSubMessage, RejectedMessage
from devices.models.reporting import BuildRollout, ComplianceSnapshot, DeviceTally

__all__ = [
    "BatteryEvent",
    "BuildRollout",
    "CheckIn",
    "ComplianceSnapshot",
    "Device",
    "DeviceSourceId",
    "DeviceTally",
    "ImportJob",
    "ObservedBuild",
    "PubSubMessage",
    "RejectedMessage",
    "StatusChange",
    "SweepRange",
    "SweepRun",
    "TaskDelivery",
    "Waiver",
]
