# The web and worker image: the project and its dependencies on a slim Python.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dispatcher ./dispatcher
COPY channels ./channels
COPY templates ./templates
RUN pip install --no-cache-dir . && useradd --system --home /app gongkai && mkdir -p /data \
    && chown gongkai /data
USER gongkai
ENV GONGKAI_HOST=0.0.0.0 GONGKAI_DATA_DIR=/data
EXPOSE 8080
CMD ["gongkai", "serve"]
