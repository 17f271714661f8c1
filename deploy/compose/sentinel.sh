#!/bin/sh
# A Sentinel rewrites its configuration as it learns the replicas and the other Sentinels,
# so each starts from a copy of its own. Two of three agreeing take a master for lost.
cat > /tmp/sentinel.conf <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel monitor alarmbroker redis 6379 2
sentinel down-after-milliseconds alarmbroker 5000
sentinel failover-timeout alarmbroker 60000
CONF
exec redis-sentinel /tmp/sentinel.conf
