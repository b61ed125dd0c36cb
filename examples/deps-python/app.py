"""Use a vendored dependency from a handler."""

import slugify_lite


def handler(event, context):
    title = event.get("title", "Hello, Wörld!")
    return {"slug": slugify_lite.slugify(title), "library": slugify_lite.__version__}
