"""The kopf operator: thin handlers over a level-based reconcile."""
