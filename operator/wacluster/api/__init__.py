"""The WhatsAppCluster API: pydantic models (the source of truth) and the generated CRD."""
