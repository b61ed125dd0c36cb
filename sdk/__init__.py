"""firebox.sdk: the client, the CLI and the guest-side helpers a handler may import."""
