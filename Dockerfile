# needle-service: the API (`serve`) and the workers (`worker`) share this image.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    NEEDLE_DATA_DIR=/data

WORKDIR /app

# Same commands as the Makefile's venv target (there: `-e '.[dev]'`; here: no editable, no dev extras).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --quiet --upgrade pip
COPY pyproject.toml README.md ./
COPY needle ./needle
COPY service ./service
RUN /opt/venv/bin/python -m pip install --quiet .

# Run as an unprivileged user; /data holds the SQLite file when no database URL is set.
RUN useradd --create-home --uid 10001 needle \
    && mkdir -p /data && chown needle:needle /data
USER needle
VOLUME ["/data"]
EXPOSE 8000

# python, not curl: the slim image has no curl. NEEDLE_PORT follows the server's own setting.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NEEDLE_PORT', '8000'), timeout=4)"]

CMD ["needle-service", "serve", "--host", "0.0.0.0"]
