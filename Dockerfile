# loadengine in a container (used by compose/). The C extension of mysql-connector-python
# is loaded before OpenSSL (see loadengine/__init__.py); results go to /app/results.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY loadengine ./loadengine
RUN pip install --no-cache-dir ".[multiplex]"
ENTRYPOINT ["loadengine"]
CMD ["run", "--profile", "smoke"]
