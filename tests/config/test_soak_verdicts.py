"""The soak's judgements (bench/soaking/verdicts.py): what counts as memory growth and what counts as an error
in a process's log.

The soak itself runs in CI (.ci/run) against the real stack; these pin its verdicts on known inputs, so a soak
that passes is one that would have failed on a leak, a worker timeout or a leaked secret.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.soaking.verdicts import log_errors, memory_verdict

MIB = 1024  # the series are in KiB, as /proc/<pid>/status gives VmRSS


def series(*mib: float, every: float = 10.0) -> list[tuple[float, int]]:
    return [(index * every, int(value * MIB)) for index, value in enumerate(mib)]


def test_a_process_whose_memory_levels_off_after_the_warm_up_is_flat() -> None:
    # Warm-up growth (0-10 s) is left out; afterwards it wobbles by a couple of MiB.
    verdict = memory_verdict(
        {"web worker": series(40, 100, 101, 103, 101, 102, 103, 101, 102, 103)},
        start=10,
        end=90,
        max_growth_pct=10,
        max_growth_mb=8,
    )

    assert verdict["web worker"]["flat"] is True
    assert verdict["web worker"]["first_third_mb"] == 101.0


def test_a_steady_leak_is_reported_as_growth() -> None:
    # 100 MiB growing 5 MiB every 10 s: the last third is ~30 MiB above the first, over 10 % and over 8 MiB.
    verdict = memory_verdict(
        {"worker pool child": series(*(100 + 5 * step for step in range(10)))},
        start=0,
        end=90,
        max_growth_pct=10,
        max_growth_mb=8,
    )

    assert verdict["worker pool child"]["flat"] is False
    assert verdict["worker pool child"]["growth_mb"] >= 25


def test_small_processes_get_an_absolute_allowance_for_allocator_noise() -> None:
    # 25 -> 31 MiB is 24 % but only 6 MiB: under the 8 MiB floor.
    verdict = memory_verdict(
        {"web main": series(25, 25, 25, 28, 28, 28, 31, 31, 31)}, start=0, end=80, max_growth_pct=10, max_growth_mb=8
    )

    assert verdict["web main"]["flat"] is True


def test_a_process_missing_from_part_of_the_window_is_not_judged() -> None:
    verdict = memory_verdict(
        {"web worker 2": [(70.0, 100 * MIB), (80.0, 100 * MIB)]}, start=0, end=90, max_growth_pct=10, max_growth_mb=8
    )

    assert verdict["web worker 2"]["flat"] is None


def test_error_lines_in_either_format_and_tracebacks_are_counted(tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    log.write_text(
        "\n".join(
            [
                json.dumps({"level": "INFO", "logger": "django.request", "message": "fine"}),
                json.dumps({"level": "WARNING", "logger": "django.request", "message": "Not Found: /x"}),
                json.dumps({"level": "ERROR", "logger": "django.request", "message": "Internal Server Error: /api"}),
                "[2026-11-26 16:00:00 +0000] [42] [CRITICAL] WORKER TIMEOUT (pid:43)",
                "Traceback (most recent call last):",
                '127.0.0.1 - - [26/Nov/2026:16:00:00 +0000] "GET /api/v1/devices/ HTTP/1.1" 200 512 "-" "-"',
            ]
        )
    )

    errors, examples = log_errors(log, {})

    assert errors == {"ERROR log line (django.request)": 1, "error line or traceback": 2}
    assert len(examples) == 3


def test_a_secret_anywhere_in_a_log_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text(json.dumps({"level": "INFO", "message": "client used fp_s3cr3t-token-value"}) + "\n")

    errors, _ = log_errors(log, {"API token": "fp_s3cr3t-token-value", "password": "not-there"})

    assert errors == {"secret in the log: API token": 1}
