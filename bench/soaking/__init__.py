"""Soak test: the production stack without Docker under mixed load, watching errors, latency and memory.

    .venv/bin/python bench/soak.py [--duration 600] [--devices 20000] \
        [--database-url postgres://postgres@127.0.0.1:5432/fp_soak] \
        [--broker-url redis://127.0.0.1:6379/8] [--cache-url redis://127.0.0.1:6379/9] [--output PATH]

The database named in --database-url is dropped and recreated, and the two Redis databases are emptied:
give it ones of its own.

1. Prepare: recreate the database, empty the broker and cache databases, migrate, collect the static files
   into a scratch folder (whitenoise's manifest storage, as in the image), seed ``seed_demo --devices N``.
   Give each organisation an API client (read, report) and its manager a password; add, per organisation, a
   digest on a cron of every minute that sends even when empty; reschedule beat's sweep and digest
   dispatcher to every --sweep-every and --digest-every seconds; ANALYZE, as autovacuum would after the seed.
   On a server with autovacuum off (a development one), VACUUM (ANALYZE) runs every --vacuum-every seconds
   in its place during the load, as production's autovacuum would.
2. Start, as docker-compose.yml does but on loopback: gunicorn (--web-workers sync workers), a Celery worker
   (every queue, --worker-concurrency children) and Celery beat (django-celery-beat's DatabaseScheduler), with
   production settings (DEBUG off, a random SECRET_KEY, JSON logs, Redis cache and broker, SMTP to an aiosmtpd
   sink in this process). Every request carries ``X-Forwarded-Proto: https`` as the TLS proxy in front would,
   so HTTPS redirects, HSTS and secure cookies stay as in production. Wait for /readyz.
3. Log each manager in through the admin's login form; prime every request kind once per client.
4. For --duration seconds, --clients threads send a paced mix of --rate requests/s: single and bulk
   check-ins, API reads (device list, device detail, compliance summary), admin pages (dashboard, device
   list, device timeline) and /metrics. Meanwhile beat fires sweeps and digest dispatches, and a sampler
   reads each process's VmRSS from /proc/<pid>/status every --sample-every seconds.
5. Stop everything (SIGTERM, then SIGKILL after a grace period) and count errors: any 5xx, unexpected
   status, connection error, check-in item refused, ERROR/CRITICAL log line or traceback, process that died
   or was replaced, secret (token, password, keys) found in a log, and no sweep or no digest when the run
   was long enough for one.
6. Memory verdict, per process: the median RSS of the last third of the run (after the warm-up) against the
   median of the first third. Flat when it grew by at most --max-growth-pct percent or --max-growth-mb MiB,
   whichever is larger: the floor absorbs allocator noise on small processes, the percentage a leak's trend.
7. Print the summary, write --output (bench/results/soak.json), exit 1 when there was any error (and 2 when
   --fail-on-growth and the memory was not flat).
"""
