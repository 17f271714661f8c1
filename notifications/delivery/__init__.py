"""Deliveries: one row per (alarm, event, step, round, target, method), then its attempts.

- `targets`: whom a step reaches and how; the step's rows.
- `queueing`: each row's task on the queue, and the lease that tells the sweeper to wait for it.
- `sending`: an attempt (claim the row, commit, call the transport, record what came of it).
- `ordering`: one post at a time per ordered channel and alarm; waking what waits.
- `follow_ups`: what an ACK, resolve or cancel stops and tells; telling the paged it fired again.
- `recovery`: the sweeper's share (overdue rows, dead workers, outbox probes, a lost queue).
- `sample_sends`: the admin's test messages.

An attempt claims its row (status `sending`, attempts + 1, a lease in `next_attempt_at`) and
commits before calling the transport, so no lock is held across the network. A worker that dies
mid-send leaves the row `sending`; once the lease runs out (or the worker's liveness key is
gone) the sweeper tries it again, at most DELIVERY_MAX_ATTEMPTS times in all (an outbox channel's
for as long as its alarm exists).

A row whose task waits in the queue carries `queued_until`: the sweeper leaves it to that task
until then (REQUEUE_AFTER_SECONDS past its time), so a worker that is behind is not handed the
same delivery again and again. A task that could not be published, or a queue that Redis lost,
frees the row for the sweeper at once. A retry or a wait queued with a countdown has no lease:
a worker holds such a task until its time and may die with it.
"""
