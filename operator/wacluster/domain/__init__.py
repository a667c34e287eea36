"""Pure domain logic: no Kubernetes, database or HTTP imports here (see .importlinter)."""
