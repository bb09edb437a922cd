"""The soak's judgements (step 5 and 6): what counts as an error, and when memory is flat.

Each function turns one kind of evidence (requests, processes, logs, stops, background work, RSS series) into
counted errors or a verdict; tests/config/test_soak_verdicts.py pins them on known inputs.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.soaking.load import Organisation, Sample
    from bench.soaking.stack import Service

_PLAIN_ERROR = re.compile(r"\[(ERROR|CRITICAL)\]|^Traceback |^\S+Error: ")


def sample_errors(samples: Iterable[Sample]) -> Counter:
    """A request that failed: 5xx, unexpected status, connection error, timeout, check-in item refused."""
    errors: Counter = Counter()
    for sample in samples:
        if sample.error:
            errors[f"{sample.kind}: {sample.error}"] += 1
    return errors


def process_errors(
    services: dict[str, Service], series: dict[str, list[tuple[float, int]]], *, sample_every: float
) -> Counter:
    """After the load: a service that died, or a process the first sample did not see (a replaced worker)."""
    errors: Counter = Counter()
    pids_seen = set(series)
    for service in services.values():
        if service.process is not None and service.process.poll() is not None:
            errors[f"{service.name} died during the run (exit code {service.process.returncode})"] += 1
    # gunicorn replaces a worker that crashed or timed out: a new pid among the web workers says so.
    initial_workers = {name for name, points in series.items() if points[0][0] <= sample_every}
    replaced = sorted(pids_seen - initial_workers)
    if replaced:
        errors["processes started during the run (a worker replaced)"] += len(replaced)
    return errors


def stop_errors(stops: dict[str, str]) -> Counter:
    """A service that did not exit with code 0 on SIGTERM within the grace period."""
    errors: Counter = Counter()
    for name, how in stops.items():
        if how not in ("exit code 0", "not started"):
            errors[f"{name} did not stop cleanly ({how})"] += 1
    return errors


def secrets_to_find(
    organisations: list[Organisation], passwords: dict[str, str], env: dict[str, str]
) -> dict[str, str]:
    """Every secret the run handed out, by a name that says which, to look for in the logs."""
    return {
        **{f"{org.pk} API token": org.token for org in organisations},
        **{f"password of {user}": password for user, password in passwords.items()},
        "SECRET_KEY": env["SECRET_KEY"],
        "METRICS_TOKEN": env["METRICS_TOKEN"],
    }


def log_errors(path: Path, secrets_: dict[str, str]) -> tuple[Counter, list[str]]:
    """Counts ERROR/CRITICAL lines (JSON or gunicorn's plain ones) and tracebacks, and any secret in the log."""
    errors: Counter = Counter()
    examples: list[str] = []
    text = path.read_text(errors="replace") if path.exists() else ""
    for name, value in secrets_.items():
        if value and value in text:
            errors[f"secret in the log: {name}"] += 1
    for line in text.splitlines():
        kind = None
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {}
            if entry.get("level") in ("ERROR", "CRITICAL"):
                kind = f"{entry['level']} log line ({entry.get('logger')})"
        elif _PLAIN_ERROR.search(line):
            kind = "error line or traceback"
        if kind:
            errors[kind] += 1
            if len(examples) < 5:
                examples.append(line[:500])
    return errors, examples


def service_log_errors(services: dict[str, Service], secrets_: dict[str, str]) -> tuple[Counter, list[str]]:
    """``log_errors`` of every service's log, each error and example named after its service."""
    errors: Counter = Counter()
    examples: list[str] = []
    for service in services.values():
        found, seen = log_errors(service.log, secrets_)
        for kind, count in found.items():
            errors[f"{service.name} log: {kind}"] += count
        examples += [f"{service.name}: {line}" for line in seen]
    return errors, examples


def background_errors(background: dict, args: argparse.Namespace) -> Counter:
    """No sweep or no digest in a run long enough for one, and digests that failed (the SMTP sink takes all)."""
    errors: Counter = Counter()
    if args.duration >= args.sweep_every + 15 and background["sweeps_completed"] == 0:
        errors["no compliance sweep completed during the run"] += 1
    if args.duration >= args.digest_every + 15 and background.get("digests_sent", 0) == 0:
        errors["no digest sent during the run"] += 1
    if background.get("digests_failed"):
        errors["digests failed or retrying"] += background["digests_failed"]
    return errors


def memory_verdict(
    series: dict[str, list[tuple[float, int]]], *, start: float, end: float, max_growth_pct: float, max_growth_mb: float
) -> dict[str, dict]:
    """First third against last third of [start, end], per process, by median RSS (see the package's step 6)."""
    third = (end - start) / 3
    verdicts: dict[str, dict] = {}
    for name, points in sorted(series.items()):
        first = [rss for at, rss in points if start <= at < start + third]
        last = [rss for at, rss in points if end - third <= at <= end]
        if not first or not last:
            verdicts[name] = {"flat": None, "note": "not alive during the whole measured window"}
            continue
        first_mb, last_mb = statistics.median(first) / 1024, statistics.median(last) / 1024
        growth = last_mb - first_mb
        allowed = max(first_mb * max_growth_pct / 100, max_growth_mb)
        verdicts[name] = {
            "first_third_mb": round(first_mb, 1),
            "last_third_mb": round(last_mb, 1),
            "max_mb": round(max(rss for _, rss in points) / 1024, 1),
            "growth_mb": round(growth, 1),
            "growth_pct": round(100 * growth / first_mb, 1),
            "allowed_growth_mb": round(allowed, 1),
            "flat": growth <= allowed,
        }
    return verdicts


def memory_is_flat(memory: dict[str, dict]) -> bool:
    """Flat when at least one process was judged and every judged one is flat."""
    judged = [v["flat"] for v in memory.values() if v.get("flat") is not None]
    return bool(judged) and all(judged)
