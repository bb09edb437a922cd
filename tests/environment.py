"""Environment for the test run, loaded as a pytest plugin before Django's settings are imported.

Production settings refuse to start without SECRET_KEY; the tests bring their own throwaway key
rather than weakening that rule. Everything else (DATABASE_URL, CELERY_BROKER_URL) is taken from
the environment as it is, so the same suite runs on the embedded defaults and on real services.
"""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "tests-only-insecure-key-never-used-in-production")
# The test client speaks plain HTTP; production keeps redirecting to HTTPS by default.
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# Tasks enqueued by committed transactions run inline in the test process instead of landing in a
# broker a developer's `make run` worker would then consume. Integration tests start real workers
# with their own environment.
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
# The default cache is files under var/ (shared by the processes of `make run`): tests keep theirs in memory,
# so they neither read nor clear a developer's running instance's throttles.
os.environ.setdefault("CACHE_URL", "locmemcache://")
# The test client runs requests in pytest's main thread, where the request deadline arms: a page that is merely
# slow on a loaded CI machine must not turn into a 503. The deadline's own tests set theirs.
os.environ.setdefault("WEB_REQUEST_DEADLINE_SECONDS", "60")
