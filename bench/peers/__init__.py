"""Peers run beside firebox: the floors and the alternatives it is compared with (bench)."""
