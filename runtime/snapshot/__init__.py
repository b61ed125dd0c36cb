"""Post-init snapshots of Python function versions: capture at deploy, restore per instance (engine layer)."""
