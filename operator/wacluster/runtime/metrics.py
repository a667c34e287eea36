"""Prometheus metrics of the runtime roles (one process = one role, so no role label)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

IS_PRIMARY = Gauge("wacluster_master_is_primary", "1 when this master holds the master Lease.")
TERM = Gauge("wacluster_master_term", "The master term (Lease transitions) this master leads with.")
FAILOVERS = Counter("wacluster_failovers_total", "Shard promotions made by this master, by reason.", ["reason"])
DETECTION_SECONDS = Histogram("wacluster_failover_detection_seconds",
                              "From a shard owner's last sign of life to the decision to replace it.",
                              buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300))
PROMOTION_SECONDS = Histogram("wacluster_promotion_duration_seconds",
                              "From the decision to promote to the shard-map write.",
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
HEARTBEAT_RTT = Histogram("wacluster_heartbeat_round_trip_seconds", "Master-to-coreapp heartbeat round trip.",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
COREAPP_HEALTHY = Gauge("wacluster_coreapp_healthy", "1 when the coreapp answered this master's last heartbeat.",
                        ["coreapp"])
SHARD_EPOCH = Gauge("wacluster_shard_epoch", "Promotion epoch of each shard as this process sees it.", ["shard"])
SHARD_CONNECTED = Gauge("wacluster_shard_connected", "1 when the shard has a serving coreapp (primary master's view).",
                        ["shard"])
DB_HEARTBEAT_AGE = Gauge("wacluster_db_heartbeat_age_seconds", "Age of each node's database heartbeat.", ["node"])
COREAPP_SERVING = Gauge("wacluster_coreapp_serving", "1 while this coreapp serves a shard.")
DATABASE_CLOCK_RATE = Gauge("wacluster_coreapp_database_clock_rate",
                            "Upper bound of the database clock's rate against this coreapp's (1: as fast).")
MESSAGES_SENT = Counter("wacluster_coreapp_messages_sent_total", "Messages this coreapp delivered to the gateway.")
WEBHOOK_EVENTS_DEAD = Counter("wacluster_webhook_events_dead_total",
                              "Webhook events this webapp dead-lettered: undelivered past webhook_dead_after_seconds.")
WEBHOOK_EVENTS_PENDING = Gauge("wacluster_webhook_events_pending",
                               "Webhook events waiting for delivery (the cluster's, as this webapp last counted).")
WEBHOOK_EVENTS_DEAD_LETTERS = Gauge("wacluster_webhook_events_dead_letters",
                                    "Dead webhook events kept for replay until retention prunes them.")
ROWS_PRUNED = Counter("wacluster_rows_pruned_total", "Rows the retention pruning deleted, by table.", ["table"])
CLOUD_SENDS = Counter("wacluster_cloud_sends_total",
                      "Cloud API send attempts by outcome: delivered, failed (for good), retried.", ["outcome"])
CLOUD_THROTTLED = Counter("wacluster_cloud_throttled_total",
                          "Cloud API answers that the account sends too fast (130429 and the like); each episode lowers the pace by a fifth.")
CLOUD_IN_DOUBT_RESENT = Counter("wacluster_cloud_in_doubt_resent_total",
                                "Messages whose earlier send had started with no known outcome, sent again after "
                                "the in-doubt window (possible duplicates).")
CLOUD_SEND_RATE = Gauge("wacluster_cloud_send_rate_limit", "The pace this coreapp sends its shard at (messages/s).")
CLOUD_QUEUE_DEPTH = Gauge("wacluster_cloud_queue_depth", "Messages the Cloud driver holds, not yet delivered or failed.")
CLOUD_PAUSED = Gauge("wacluster_cloud_sending_paused",
                     "1 while the Cloud API refuses the account (token, permission, account state): nothing is sent.")
