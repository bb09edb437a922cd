"""The soak's command line and its steps in order (the package's docstring numbers them)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType

from bench import soaking
from bench.soaking.database import VacuumStandIn, autovacuum_enabled, outcome_counts, prepare, reset_stores
from bench.soaking.load import Load, admin_login
from bench.soaking.report import background_figures, print_summary, run_figures, write_figures
from bench.soaking.stack import (
    ROOT,
    MemorySampler,
    ProxiedHttp,
    Sink,
    free_port,
    production_environment,
    stack_services,
    start_smtp,
    stop_services,
    wait_until_ready,
)
from bench.soaking.verdicts import (
    background_errors,
    memory_is_flat,
    memory_verdict,
    process_errors,
    sample_errors,
    secrets_to_find,
    service_log_errors,
    stop_errors,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fp_soak"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/8"
DEFAULT_CACHE_URL = "redis://127.0.0.1:6379/9"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=soaking.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default %(default)s)")
    parser.add_argument("--devices", type=int, default=20_000, help="seed_demo's fleet size (default %(default)s)")
    parser.add_argument("--organisations", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("SOAK_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--broker-url", default=os.environ.get("SOAK_BROKER_URL", DEFAULT_BROKER_URL))
    parser.add_argument("--cache-url", default=os.environ.get("SOAK_CACHE_URL", DEFAULT_CACHE_URL))
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn sync workers (default %(default)s)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery prefork children")
    parser.add_argument("--clients", type=int, default=8, help="load threads (default %(default)s)")
    parser.add_argument("--rate", type=float, default=20, help="requests per second, all kinds (default %(default)s)")
    parser.add_argument("--sweep-every", type=int, default=30, help="seconds between beat's sweeps")
    parser.add_argument("--digest-every", type=int, default=20, help="seconds between beat's digest dispatches")
    parser.add_argument("--sample-every", type=float, default=None, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=None, help="seconds left out of the memory verdict")
    parser.add_argument("--max-growth-pct", type=float, default=10.0)
    parser.add_argument("--max-growth-mb", type=float, default=8.0)
    parser.add_argument("--fail-on-growth", action="store_true", help="exit 2 when the memory is not flat")
    parser.add_argument(
        "--vacuum-every", type=float, default=60, help="seconds between VACUUM (ANALYZE) when autovacuum is off"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and scratch files (default: a tmp dir)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("the soak runs the production stack: give --database-url a postgres:// URL")
    if not args.broker_url.startswith("redis://") or not args.cache_url.startswith("redis://"):
        parser.error("the soak runs the production stack: give redis:// URLs for the broker and the cache")
    if args.sample_every is None:
        args.sample_every = max(1.0, min(5.0, args.duration / 60))
    if args.warmup is None:
        args.warmup = min(60.0, args.duration * 0.1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleetpatch-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port, smtp_port = free_port(), free_port()
    env = production_environment(args, workdir=workdir, port=port, smtp_port=smtp_port)
    shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
    os.environ.clear()
    os.environ.update(env)
    load_before = os.getloadavg()
    script_started = time.monotonic()
    timings: dict[str, float] = {}

    def stop_on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop_on_signal)

    # 1. Prepare.
    print(f"soak: work folder {workdir}; preparing {args.devices} devices on {args.database_url}", flush=True)
    started = time.monotonic()
    reset_stores(args)
    organisations, newest, passwords = prepare(args)
    timings["prepare_seconds"] = round(time.monotonic() - started, 1)

    services = stack_services(args, workdir=workdir, port=port)
    errors: Counter = Counter()
    sampler = MemorySampler(services, args.sample_every)
    autovacuum_on = autovacuum_enabled(args.database_url)
    vacuum = None if autovacuum_on else VacuumStandIn(args.database_url, args.vacuum_every)
    if vacuum is not None:
        print(
            f"soak: this PostgreSQL runs with autovacuum off; VACUUM (ANALYZE) every {args.vacuum_every:g} s "
            "stands in for it, as production's autovacuum keeps the planner's statistics and dead rows in check",
            flush=True,
        )
    load: Load | None = None
    smtp = None
    sink = Sink()
    stack_started_at = None
    try:
        from django.utils import timezone

        # 2. Start the stack.
        stack_started_at = timezone.now()
        started = time.monotonic()
        for service in services.values():
            service.start(env, workdir)
        smtp = start_smtp(sink, smtp_port)
        http_ = ProxiedHttp(port)
        wait_until_ready(services, http_)
        timings["start_seconds"] = round(time.monotonic() - started, 1)

        # 3. Log in, prime.
        for org in organisations:
            org.session_cookie = admin_login(http_, org.manager, passwords[org.manager])
        load = Load(http_, organisations, newest, metrics_token=env["METRICS_TOKEN"], seed=args.seed)
        load.prime(args.clients)
        errors.update(sample_errors(load.samples))
        print(
            f"soak: stack ready in {timings['start_seconds']} s (prepared in {timings['prepare_seconds']} s); "
            f"{args.duration:.0f} s of load at {args.rate:g} requests/s from {args.clients} clients",
            flush=True,
        )

        # 4. The load, with the memory sampler (and the vacuum stand-in) alongside.
        sampler.started = time.monotonic()
        sampler.start()
        if vacuum is not None:
            vacuum.start()
        load.run(clients=args.clients, rate=args.rate, seconds=args.duration)
        sampler.stopping.set()
        sampler.join()
        errors.update(process_errors(services, sampler.series, sample_every=args.sample_every))
    except KeyboardInterrupt:
        print("soak: interrupted; stopping the stack", file=sys.stderr)
        errors["interrupted"] += 1
    except RuntimeError as failure:
        print(f"soak: {failure}", file=sys.stderr)
        errors[str(failure)] += 1
    finally:
        # 5. Stop everything.
        sampler.stopping.set()
        if vacuum is not None:
            vacuum.stopping.set()
        stopping = time.monotonic()
        stops = stop_services(services)
        if smtp is not None:
            smtp.stop()
        timings["stop_seconds"] = round(time.monotonic() - stopping, 1)

    # 5. Count the errors: in the logs, the stops, the requests, the background work.
    log_found, examples = service_log_errors(services, secrets_to_find(organisations, passwords, env))
    errors.update(log_found)
    errors.update(stop_errors(stops))
    samples = load.samples if load is not None else []
    errors.update(sample_errors(samples))
    background = background_figures(
        outcome_counts(stack_started_at) if stack_started_at is not None else {},
        services["worker"].log,
        mail_received=len(sink.subjects),
        autovacuum=autovacuum_on,
        vacuum_runs=vacuum.runs if vacuum is not None else 0,
    )
    if stack_started_at is not None:
        errors.update(background_errors(background, args))

    # 6. The memory verdict.
    memory = memory_verdict(
        sampler.series,
        start=args.warmup,
        end=args.duration,
        max_growth_pct=args.max_growth_pct,
        max_growth_mb=args.max_growth_mb,
    )
    flat = memory_is_flat(memory)

    # 7. Report.
    figures = run_figures(
        args,
        samples=samples,
        errors=errors,
        examples=examples,
        background=background,
        memory=memory,
        flat=flat,
        series=sampler.series,
        stops=stops,
        timings=timings,
        wall_clock_seconds=round(time.monotonic() - script_started, 1),
        load_before=load_before,
        workdir=workdir,
    )
    print_summary(figures)
    write_figures(figures, args.output)
    if figures["errors_total"]:
        return 1
    if args.fail_on_growth and not flat:
        return 2
    return 0
