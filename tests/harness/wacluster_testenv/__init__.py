"""The project's local test environment: a real Kubernetes control plane and PostgreSQL."""
