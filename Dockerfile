# FleetPatch production image: gunicorn for the web, the same image for the Celery worker and beat.
# Used by docker-compose.yml; the configuration comes from the environment (README.md, "Configuration").
FROM python:3.11-slim

# PYTHONPATH: processes run from the source tree in /app, which has the templates and static files
# that the installed wheel does not carry.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=config.settings \
    VAR_DIR=/app/var

RUN useradd --create-home --uid 10001 --user-group fleetpatch

WORKDIR /app
COPY . /app
# Static files belong to the image: collected once here, served by whitenoise, never written at run
# time. The key only lets the settings import; nothing is signed at build time.
RUN pip install . \
    && SECRET_KEY=collectstatic-build-only python manage.py collectstatic --no-input --verbosity 0 \
    && mkdir -p /app/var \
    && chown -R fleetpatch:fleetpatch /app/var

USER fleetpatch
EXPOSE 8000

# Every interface of the container: the reverse proxy in front of it terminates TLS and sets
# X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER). Worker count: WEB_CONCURRENCY, read by gunicorn.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
