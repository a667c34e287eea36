"""The coreapp: a standby until promoted; then it owns one shard's gateway connection and sends
that shard's messages. One concern per module:

- `role`: the role's state (`domain/coreapp_state.py`), its parts, the supervised tasks, the
  decision loop (stand by, take a shard, keep it, give it up);
- `ownership`: the shard lease and self-fencing (takeover, renewal, watchdog, fence);
- `control`: the control port (heartbeats, the webapps' hand-off, validated and bounded);
- `outbox`: the messages in hand, bounded;
- `sender`: the outbox to the gateway and the acks to the database;
- `backlog`: the scan that keeps the shard's backlog drained;
- `handoff`: the planned handoff on SIGTERM;
- `statuses`: delivery statuses to webhook events;
- `supervision`: the supervisor every long-lived task runs under;
- `main`: the `wacluster coreapp` entry point.
"""
