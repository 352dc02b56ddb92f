# One image for every ResultFlow service; compose.yaml picks the command.
FROM debian:12-slim

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Debian's Python is the one with LibreOffice's `uno` module.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv python3-uno libreoffice-writer-nogui \
      fonts-crosextra-carlito fonts-liberation2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN /usr/bin/python3.11 -m venv --system-site-packages /venv
ENV PATH=/venv/bin:$PATH
# The locked runtime dependencies, each file checked against its hash; then the project alone.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
RUN pip install --no-cache-dir --no-deps .

RUN useradd --create-home --uid 10001 resultflow
USER resultflow
ENV RESULTFLOW_WORK_DIR=/tmp/resultflow
EXPOSE 8080
CMD ["resultflow", "gateway"]
