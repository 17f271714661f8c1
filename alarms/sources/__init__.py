"""Where alarms come from, one module per source, each holding that source's rules (what it
takes, what it raises, when it clears): devices and the emergency key, the JSON raise and
clear, Alertmanager, PagerDuty, metric samples and rules, heartbeats, scheduled alarms. A
source returns an outcome or raises a `refusal.Refused`; the HTTP views, the fast path and the
drills only render or use what it decides."""
