"""Where alarms come from, one module per source, each holding that source's rules (what it
raises, when it clears): metric rules, heartbeats, scheduled alarms. The HTTP views, the fast
path and the drills only render or use what a source decides."""
