# The production image: web (daphne), worker and beat all run from it (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VAR_DIR=/app/var
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# A throwaway key: collectstatic must not write a real one into the image.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && groupadd --system --gid 10001 alarms \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app alarms \
    && chown -R alarms /app/var
# By number, so Kubernetes can check runAsNonRoot (deploy/kubernetes).
USER 10001

EXPOSE 8000
# Daphne, its access log through logging (JSON, tokens redacted): see alarmsite/serve.py.
CMD ["python", "-m", "alarmsite.serve", "-b", "0.0.0.0", "-p", "8000", "alarmsite.asgi:application"]
