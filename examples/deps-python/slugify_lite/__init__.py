"""slugify_lite: a tiny vendored pure-Python package (turns titles into URL slugs)."""

import re
import unicodedata

__version__ = "1.0.0"


def slugify(text: str, separator: str = "-") -> str:
    """Return `text` lower-cased, accents removed, non-alphanumerics collapsed to `separator`."""
    normalized = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", separator, normalized.lower()).strip(separator)
