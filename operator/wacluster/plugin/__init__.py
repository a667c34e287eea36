"""`kubectl wac`: the on-call engineer's view of a WhatsAppCluster and its maintenance verbs.

Every action only writes annotations on the WhatsAppCluster (documented in docs/operations.md),
so a GitOps user gets the same result by committing them; the plugin adds the waiting and the
story of what happened."""
