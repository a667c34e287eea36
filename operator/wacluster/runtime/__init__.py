"""The runtime roles: master, coreapp, webapp, sandbox and dbupgrade (one CLI, one image)."""
