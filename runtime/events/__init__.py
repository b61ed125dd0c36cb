"""firebox.runtime.events: durable queues, streams and (later) event sources for async invocation."""
