"""The operator's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("wacluster_operator_reconciles_total", "Reconciliations of WhatsAppClusters by result.",
                     ["result"])
RECONCILE_SECONDS = Histogram("wacluster_operator_reconcile_duration_seconds",
                              "Duration of one WhatsAppCluster reconciliation.",
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CLUSTERS = Gauge("wacluster_operator_clusters", "WhatsAppClusters by phase, as last reconciled.", ["phase"])
IS_LEADER = Gauge("wacluster_operator_is_leader", "1 when this operator replica holds the operator Lease.")
API_CERTIFICATE_EXPIRY = Gauge("wacluster_api_certificate_expiry_timestamp_seconds",
                               "When the API certificate the operator generated expires (Unix time).",
                               ["namespace", "cluster"])
APPLIES = Counter("wacluster_operator_applies_total",
                  "Server-side applies of owned objects, by reason: never-applied (by this process), "
                  "deleted (a watch saw it go), desired-changed, changed-by-others (another field "
                  "manager edited it), refresh (the hourly safety net).", ["reason"])
APPLIES_SKIPPED = Counter("wacluster_operator_applies_skipped_total",
                          "Owned objects not applied because neither the desired nor the live object "
                          "changed since the last apply.")
