# accessbot: `docker build -t accessbot .` then see docs/deploy.md for the environment it needs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies and the package first, so that editing the docs or migrations rebuilds less.
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install . && rm -rf bot build ./*.egg-info

# Alembic's scripts: the installed package finds them in the working directory (bot/store/schema.py
# migrations_dir()), which is why WORKDIR stays /app.
COPY migrations ./migrations
COPY alembic.ini ./
# The IAM documents `accessbot iam-policy [--member]` prints, found the same way.
COPY docs/iam-policy.json docs/iam-policy-member.json docs/iam-trust-member.json ./docs/

# Never run as root. /data is the one writable place (SQLite, for trying the image without PostgreSQL).
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin accessbot \
    && mkdir /data && chown accessbot /data
USER accessbot

ENV PORT=3000 \
    DATABASE_URL=sqlite:////data/accessbot.db \
    ACCESSBOT_CATALOG=/app/catalog.yaml
EXPOSE 3000

CMD ["accessbot", "serve"]
