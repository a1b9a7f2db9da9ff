# CallPulse server-mode image: one image, many roles (see docker-compose.yml).
#   docker build -t callpulse .
#   docker run --rm callpulse --help

# --- build: install the project and its pinned dependencies into a venv -------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .

# --- runtime: the venv only, run as an unprivileged user ----------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CALLPULSE_DATA_DIR=/data

RUN groupadd --system --gid 10001 callpulse \
    && useradd --system --uid 10001 --gid callpulse --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin callpulse \
    && mkdir -p /app /data \
    && chown callpulse:callpulse /app /data

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER callpulse
# Faust state and (without CALLPULSE_HMAC_KEY) the generated HMAC key live here.
VOLUME ["/data"]

ENTRYPOINT ["callpulse"]
CMD ["--help"]
