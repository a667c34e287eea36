"""Pure builders of the Kubernetes objects a WhatsAppCluster owns: spec in, manifests (dicts) out."""
