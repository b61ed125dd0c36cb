"""`firebox.secrets`: the secrets a function was granted (guest side).

    import firebox
    key = firebox.secrets.get("STRIPE_KEY")   # str, or None when it is not set

Read it when needed (not at import time): a rotated secret is seen by the next get,
with no redeploy. Keep it out of logs and results; the host never logs it.
"""

from __future__ import annotations

from firebox_guest_capability import call


def get(name: str, default: str | None = None) -> str | None:
    """Return the current value of secret `name`, or `default` when it is not set;
    raises CapabilityDenied when the function was not granted it."""
    value = call("secret.get", name=name)["value"]
    return default if value is None else str(value)
