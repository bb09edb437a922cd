"""The soak's output (step 7): the figures of a run, printed as a summary and written as JSON.

The JSON's keys are what bench/results/soak.json and the README's table read: keep them stable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.soaking.load import WEIGHTS, Sample


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def request_figures(samples: list[Sample]) -> dict[str, dict]:
    """Per request kind that ran: count, errors, p50, p99 and max latency."""
    requests: dict[str, dict] = {}
    for kind in WEIGHTS:
        seconds = [s.seconds for s in samples if s.kind == kind]
        if seconds:
            requests[kind] = {
                "count": len(seconds),
                "errors": sum(1 for s in samples if s.kind == kind and s.error),
                "p50_ms": round(1000 * percentile(seconds, 0.5), 1),
                "p99_ms": round(1000 * percentile(seconds, 0.99), 1),
                "max_ms": round(1000 * max(seconds), 1),
            }
    return requests


def task_runtimes(worker_log: str) -> dict[str, dict]:
    """Per task name, from Celery's trace lines: how many succeeded and their run time (median, max)."""
    seconds: dict[str, list[float]] = defaultdict(list)
    for name, value in re.findall(r"Task ([\w.]+)\[[^]]+\] succeeded in ([0-9.]+)s", worker_log):
        seconds[name].append(float(value))
    return {
        name: {"count": len(values), "p50_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}
        for name, values in sorted(seconds.items())
    }


def background_figures(
    counts: dict, worker_log: Path, *, mail_received: int, autovacuum: bool, vacuum_runs: int
) -> dict:
    """The background work: the database's ``counts``, plus what the worker's log and the SMTP sink saw."""
    background = dict(counts)
    text = worker_log.read_text(errors="replace") if worker_log.exists() else ""
    # Celery's own trace lines ("Task <name>[<id>] succeeded in ..."): they outlive any change to the tasks' logs.
    for task, key in (
        ("updates.sweep_compliance", "sweeps_completed"),
        ("fleet.send_digest", "digest_tasks_completed"),
    ):
        background[key] = len(re.findall(rf"Task {re.escape(task)}\[[^]]+\] succeeded", text))
    background["mail_received"] = mail_received
    background["task_runtimes"] = task_runtimes(text)
    background["autovacuum"] = autovacuum
    background["vacuum_standin_runs"] = vacuum_runs
    return background


def run_figures(
    args: argparse.Namespace, *, samples: list[Sample], errors: Counter, examples: list[str], background: dict,
    memory: dict[str, dict], flat: bool, series: dict[str, list[tuple[float, int]]], stops: dict[str, str],
    timings: dict[str, float], wall_clock_seconds: float, load_before: tuple[float, float, float], workdir: Path,
) -> dict:  # fmt: skip
    """Everything the run measured, as the JSON written to --output."""
    achieved = len(samples) / args.duration if samples else 0.0
    return {
        "what": "soak: gunicorn + Celery worker + beat on PostgreSQL and Redis under mixed load",
        "duration_seconds": args.duration,
        "devices": args.devices,
        "organisations": args.organisations,
        "web_workers": args.web_workers,
        "worker_concurrency": args.worker_concurrency,
        "clients": args.clients,
        "target_rate_per_second": args.rate,
        "achieved_rate_per_second": round(achieved, 1),
        "requests_total": len(samples),
        "errors_total": sum(errors.values()),
        "errors": dict(errors.most_common()),
        "error_examples": examples[:10],
        "requests": request_figures(samples),
        "background": background,
        "memory_rule": (
            f"per process, median RSS of the last third of [{args.warmup:g} s, {args.duration:g} s] minus that of "
            f"the first third, at most max({args.max_growth_pct:g} %, {args.max_growth_mb:g} MiB)"
        ),
        "memory_verdict": "flat" if flat else "growing",
        "memory": memory,
        "memory_series_kib": {name: [[round(at, 1), rss] for at, rss in points] for name, points in series.items()},
        "stops": stops,
        **timings,
        "wall_clock_seconds": wall_clock_seconds,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "logs": str(workdir),
    }


def write_figures(figures: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"Written to {output}")


def print_summary(figures: dict) -> None:
    print(
        f"\n{figures['requests_total']} requests in {figures['duration_seconds']:g} s "
        f"({figures['achieved_rate_per_second']}/s of {figures['target_rate_per_second']:g}/s asked)"
    )
    print(f"{'request kind':<24}{'count':>7}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind, row in figures["requests"].items():
        print(f"{kind:<24}{row['count']:>7}{row['errors']:>8}{row['p50_ms']:>9}{row['p99_ms']:>9}{row['max_ms']:>9}")
    background = figures["background"]
    print(
        f"background: {background.get('sweeps_completed', 0)} sweeps, {background.get('digests_sent', 0)} digests "
        f"sent ({background.get('mail_received', 0)} mails received), {background.get('check_ins_stored', 0)} "
        f"check-ins stored, {background.get('status_changes', 0)} status changes"
    )
    for task, row in background.get("task_runtimes", {}).items():
        print(f"  task {task:<32} {row['count']:>5} runs, p50 {row['p50_s']} s, max {row['max_s']} s")
    if not background.get("autovacuum", True):
        print(f"  autovacuum off on this server: {background['vacuum_standin_runs']} VACUUM (ANALYZE) stood in")
    print(f"memory ({figures['memory_rule']}): {figures['memory_verdict'].upper()}")
    for name, row in figures["memory"].items():
        if row.get("flat") is None:
            print(f"  {name:<28} {row['note']}")
            continue
        print(
            f"  {name:<28} {row['first_third_mb']:>7} -> {row['last_third_mb']:>7} MiB "
            f"({row['growth_mb']:+.1f} MiB, {row['growth_pct']:+.1f} %, max {row['max_mb']}) "
            f"{'flat' if row['flat'] else 'GROWING'}"
        )
    print(f"errors: {figures['errors_total']}")
    for kind, count in figures["errors"].items():
        print(f"  {count:>6}  {kind}")
    for line in figures["error_examples"]:
        print(f"    e.g. {line}")
