# One image for every role (web, worker, beat, migrate); docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_ROOT=/data/media \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    PYTHONPATH=/app

WORKDIR /app
# The apps are imported from /app (PYTHONPATH), with their templates, static files and migrations beside them;
# `pip install .` brings in the dependencies.
COPY pyproject.toml README.md ./
COPY leadcrm ./leadcrm
COPY leads ./leads
COPY scoring ./scoring
COPY nurturing ./nurturing
COPY routing ./routing
COPY campaigns ./campaigns
COPY webhooks ./webhooks
COPY reports ./reports
COPY templates ./templates
COPY static ./static
COPY manage.py gunicorn.conf.py ./
COPY deploy/entrypoint.sh /usr/local/bin/leadcrm-entrypoint
RUN pip install . \
    && DEBUG=0 python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --home-dir /app leadcrm \
    && mkdir -p /data/media \
    && chown leadcrm /data/media

USER leadcrm
EXPOSE 8000
ENTRYPOINT ["leadcrm-entrypoint"]
CMD ["gunicorn", "leadcrm.wsgi:application", "--config", "gunicorn.conf.py"]
