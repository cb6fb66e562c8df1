# syntax=docker/dockerfile:1
# The image of the scale-out profile (docker-compose.yaml): the official Apache Airflow 3.3.2 image on
# Python 3.11, the dependencies locked in uv.lock (exact versions, hash-checked, no dev group) and the
# `mlops` package with the DAGs, plugins and Feast repo. It holds no secret: every credential comes
# from the environment at run time (.env.example lists them).
#
#   docker-compose build        (or: docker build -t mlops-flights:local .)
FROM apache/airflow:3.3.2-python3.11

# The uv that the Makefile pins; it only turns uv.lock into a hash-pinned requirements file.
ARG UV_VERSION=0.13.9

USER root
# /opt/mlops: the project tree (mlops.config finds dags/, plugins/ and feature_repo/ beside include/).
# /opt/airflow/auth: the UI passwords file (a volume written by airflow-init). Owned by airflow, group 0
# like the rest of the image, so an arbitrary UID with group 0 works too.
RUN mkdir -p /opt/mlops /opt/airflow/auth /opt/airflow/mlops /opt/airflow/config \
    && chown -R airflow:0 /opt/mlops /opt/airflow/auth /opt/airflow/mlops /opt/airflow/config \
    && chmod 0770 /opt/airflow/auth
USER airflow
WORKDIR /opt/mlops

# 1. Locked third-party dependencies (this layer is rebuilt only when pyproject.toml or uv.lock change).
COPY --chown=airflow:0 pyproject.toml uv.lock README.md ./
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && uv export --frozen --no-dev --no-emit-project --format requirements-txt \
         --output-file /tmp/requirements.txt \
    && pip install --no-cache-dir --no-deps --require-hashes -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 2. The project: the `mlops` package (editable, so mlops.config.REPO_ROOT is /opt/mlops), DAGs,
#    plugins and the Feast repo.
COPY --chown=airflow:0 include ./include
COPY --chown=airflow:0 dags ./dags
COPY --chown=airflow:0 plugins ./plugins
COPY --chown=airflow:0 feature_repo ./feature_repo
# The project's Airflow local settings (the scheduler and Celery workers preload heavy modules, so
# forked task processes start warm), exactly as the embedded profile installs them.
RUN pip install --no-cache-dir --no-deps --editable . \
    && python -c "from pathlib import Path; from mlops.dev.embedded import write_local_settings; \
write_local_settings(Path('/opt/airflow'))"

WORKDIR /opt/airflow
