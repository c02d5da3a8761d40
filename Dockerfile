# One image for the backend, the consumer and the bot (docker-compose.yml picks the
# subcommand). The embedded broker is not used in here: compose runs apache/kafka.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline_core ./pipeline_core
COPY recipe_pipeline ./recipe_pipeline
COPY backend ./backend
COPY consumer ./consumer
COPY bot ./bot
COPY tui ./tui
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 pipeline \
    && mkdir -p /data && chown pipeline /data

USER pipeline
VOLUME ["/data"]
ENTRYPOINT ["recipe-pipeline"]
