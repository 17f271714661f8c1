"""What the broker tells about itself: its figures (recorded in Redis by every process), the
Prometheus collector and /metrics, and health and readiness for load balancers."""
