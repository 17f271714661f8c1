"""A test run leaves the Redis database it was given as it found it: a real run of a test that
writes figures, board numbers and Celery's queues, in a pytest of its own against a private
Redis, ends with only the key that was there before it, untouched."""

import os
import subprocess
import sys

from redis import Redis

from conftest import ROOT

# Raises an alarm over HTTP, steps it in a Celery worker, sends, acknowledges and resolves it:
# most kinds of key the broker writes.
WRITING_TEST = "observability/tests/test_instruments.py::test_open_alarms_follow_the_alarms_status"


def test_a_test_run_removes_the_keys_it_wrote_and_keeps_those_it_found(private_redis, tmp_path):
    redis = Redis.from_url(private_redis.url)
    redis.set("kept:by-its-owner", "as it was")
    redis.hset("metrics:someone-elses", "field", "1")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # SQLite, in tmp_path
    env.update(REDIS_URL=private_redis.url, VAR_DIR=str(tmp_path))

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", WRITING_TEST],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
    assert sorted(redis.keys()) == [b"kept:by-its-owner", b"metrics:someone-elses"]
    assert redis.get("kept:by-its-owner") == b"as it was"
    assert redis.hgetall("metrics:someone-elses") == {b"field": b"1"}
