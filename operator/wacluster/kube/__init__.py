"""Kubernetes adapters: the only modules that talk to the API server (kubernetes_asyncio)."""
