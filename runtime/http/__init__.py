"""firebox.runtime.http: the Starlette front end (native API, triggers, errors)."""
