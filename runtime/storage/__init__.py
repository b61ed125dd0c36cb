"""firebox.runtime.storage: registry, queue and key-value backends behind small interfaces."""
