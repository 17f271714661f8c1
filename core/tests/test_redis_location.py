"""Redis through Sentinel, on a real master, replica and three Sentinels: the bookkeeping
client, Celery's broker and the channel layer each find the master by asking the Sentinels,
and find the new one after the master is killed, without being made anew."""

import asyncio
import time

import pytest
import redis
from channels_redis.pubsub import RedisPubSubChannelLayer
from kombu import Connection

from alarms.tests.faults.replicas import MASTER, SentinelRedis
from core.redis_location import RedisLocation, parse_sentinels


@pytest.fixture
def sentinels(tmp_path):
    group = SentinelRedis(tmp_path).start()
    yield group
    group.stop()


def located(group: SentinelRedis) -> RedisLocation:
    env = group.env
    return RedisLocation(
        env["REDIS_URL"], parse_sentinels(env["REDIS_SENTINELS"].split(",")), MASTER
    )


def test_sentinel_addresses_are_read_with_their_default_port():
    assert parse_sentinels(["a:26380", "b", "[::1]:26381", "10.0.0.9"]) == (
        ("a", 26380), ("b", 26379), ("::1", 26381), ("10.0.0.9", 26379),
    )  # fmt: skip


def test_without_sentinels_every_client_uses_redis_url():
    where = RedisLocation("redis://:secret@redis.internal:6380/3")
    assert where.celery_broker_url() == "redis://:secret@redis.internal:6380/3"
    assert where.celery_transport_options() == {}
    assert where.channel_layer_host() == "redis://:secret@redis.internal:6380/3"
    assert RedisLocation("unix:///run/redis.sock").celery_broker_url() == (
        "redis+socket:///run/redis.sock"
    )


def test_with_sentinels_the_master_password_and_database_come_from_redis_url():
    where = RedisLocation(
        "redis://:secret@mymaster/2", (("s1", 26379), ("s2", 26380)), "cache-master", "sentpw"
    )
    assert where.celery_broker_url() == (
        "sentinel://:secret@s1:26379/2;sentinel://:secret@s2:26380/2"
    )
    options = where.celery_transport_options()
    assert options["master_name"] == "cache-master"
    asked = options["sentinel_kwargs"]
    assert (asked["password"], asked["socket_timeout"], asked["retry"].get_retries()) == (
        "sentpw", 2, 0,
    )  # fmt: skip
    host = where.channel_layer_host()
    assert (host["sentinels"], host["master_name"], host["db"], host["password"]) == (
        [("s1", 26379), ("s2", 26380)], "cache-master", 2, "secret",
    )  # fmt: skip
    assert host["sentinel_kwargs"]["password"] == "sentpw"


def test_a_password_with_url_characters_reaches_the_broker_url_quoted():
    where = RedisLocation("redis://:a%2Fb%23c@mymaster/0", (("s1", 26379),))
    assert where.celery_broker_url() == "sentinel://:a%2Fb%23c@s1:26379/0"
    assert where.channel_layer_host()["password"] == "a/b#c"


def test_a_url_sentinels_cannot_honour_is_refused_at_start_up():
    with pytest.raises(ValueError, match="rediss://"):
        RedisLocation("rediss://:pw@mymaster/0", (("s1", 26379),))


def test_the_bookkeeping_client_follows_a_failover(sentinels):
    client = located(sentinels).connect(socket_timeout=0.5, socket_connect_timeout=0.5)
    client.set("kept", "before")
    old = sentinels.kill_master()
    sentinels.wait_for_new_master(old)

    # The first calls may still meet the dead master's connection, or Sentinels that have not
    # settled their view yet (callers fail open meanwhile); a later one finds the new master.
    answers = []
    for _ in range(25):
        try:
            answers.append(client.get("kept"))
            break
        except redis.RedisError as exc:
            answers.append(type(exc).__name__)
            time.sleep(0.2)
    assert answers[-1] == b"before", answers
    assert len(answers) < 10, answers
    assert client.connection_pool.get_master_address()[1] != old


def test_celery_s_broker_publishes_and_consumes_through_the_sentinels(sentinels):
    where = located(sentinels)
    with Connection(
        where.celery_broker_url(), transport_options=where.celery_transport_options()
    ) as conn:
        queue = conn.SimpleQueue("sentinel-check")
        queue.put({"n": 1})
        old = sentinels.kill_master()
        sentinels.wait_for_new_master(old)
        conn.ensure_connection(max_retries=5)
        queue = conn.SimpleQueue("sentinel-check")
        queue.put({"n": 2})
        got = [queue.get(timeout=5).payload for _ in range(2)]
        queue.close()
    # The first was replicated before the master died, the second went to the new one.
    assert sorted(m["n"] for m in got) == [1, 2]


def test_the_channel_layer_reaches_its_groups_through_the_sentinels_after_a_failover(sentinels):
    layer = RedisPubSubChannelLayer(hosts=[located(sentinels).channel_layer_host()])

    async def round_trip(channel, text):
        await layer.group_send("board", {"type": "board.alarm", "text": text})
        return (await asyncio.wait_for(layer.receive(channel), 10))["text"]

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add("board", channel)
        before = await round_trip(channel, "before")
        old = await asyncio.to_thread(sentinels.kill_master)
        await asyncio.to_thread(sentinels.wait_for_new_master, old)
        # The layer's subscription was on the dead master: it subscribes again on the new one.
        after = None
        for _ in range(20):
            try:
                after = await round_trip(channel, "after")
                break
            except (redis.RedisError, OSError, TimeoutError):
                await asyncio.sleep(0.5)
        await layer.flush()
        return before, after

    assert asyncio.run(scenario()) == ("before", "after")
