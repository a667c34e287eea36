"""wacluster: a Kubernetes operator for the WhatsApp Business API client in HA and multiconnect mode."""

__version__ = "0.1.0"
