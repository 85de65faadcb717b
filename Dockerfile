# syntax=docker/dockerfile:1

# One pinned base for both stages: a rebuild gets the same Python and Debian. To update,
# change the patch version here (the official image's tags: python:3.11.N-slim-trixie).
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# -- build: a virtualenv with the dependencies only --------------------------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Exactly the versions and files of requirements.lock (make lock; one lock for amd64 and
# arm64): every one pinned and hash-checked, nothing resolved here. The project itself is
# not installed: the code runs from /app.
COPY requirements.lock ./
RUN pip install --no-deps --require-hashes --only-binary=:all: -r requirements.lock

# -- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin vexxy
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY manage.py gunicorn.conf.py ./
COPY vexxy ./vexxy
COPY reliability ./reliability
COPY analysis ./analysis
COPY templates ./templates
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    STATIC_ROOT=/app/static \
    VEXXY_DATA_DIR=/app/var
# collectstatic needs settings to load; these build-time values never reach the running image.
RUN SECRET_KEY=collectstatic-only-not-a-real-secret-0123456789 ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput --verbosity 0 \
 && mkdir -p /app/var && chown vexxy /app/var
USER 10001
EXPOSE 8000
# One check for each role, told apart by PID 1's command (or VEXXY_ROLE=web|worker|beat):
# web GET /livez; worker a recent heartbeat in the shared cache; beat a recent write of its
# schedule file. See vexxy/container_health.py; it also serves as a Kubernetes exec probe.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["python", "-m", "vexxy.container_health"]
# Worker: docker run IMAGE celery -A vexxy worker; beat: docker run IMAGE celery -A vexxy beat
# Sync workers, WEB_CONCURRENCY of them (default 2 per core + 1): see gunicorn.conf.py.
CMD ["gunicorn", "vexxy.wsgi", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
