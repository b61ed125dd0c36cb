"""Lambda's runtime SDK (boto3, botocore) pre-imported into the interpreter snapshot (guest side).

The runtime layer (compiler/runtime_layer.py) is the second `-p` folder of the build:
componentize-py serves it to the guest at `/1` while it pre-initializes, so the modules
in the snapshot name files under `/1`, and the sandbox maps the same folder read-only at
the same path in every instance (botocore reads its service models from there at run
time, tzdata its zone files). A function that vendors its own boto3 or botocore gets its
own: `prefer_bundle` forgets the snapshot's copies before the handler is imported.
"""

from __future__ import annotations

# isort: off
import firebox_guest_ssl  # noqa: F401 - before asyncio and the SDK look for `ssl`
# isort: on

import importlib
import os
import sys
from collections.abc import Callable, Iterable

#: Top-level modules of the layer that a bundle may override with its own copy.
LAYER_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")

#: What the snapshot holds: the SDK's import-time modules, without creating any client
#: (a client would freeze credentials and a region into every instance).
_PRELOAD = (
    "boto3",
    "boto3.session",
    "boto3.resources.factory",
    "botocore.session",
    "botocore.client",
    "botocore.credentials",
    "botocore.handlers",
    "botocore.loaders",
    "botocore.parsers",
    "botocore.serialize",
    "botocore.endpoint",
    "botocore.httpsession",
    "botocore.regions",
    "botocore.retries.standard",
    "tzdata",
)


def _layer_root() -> str:
    try:
        import botocore
    except ImportError:
        return ""
    return os.path.dirname(os.path.dirname(os.path.abspath(botocore.__file__)))


def _preload() -> None:
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            continue


_preload()

#: Where the layer lives in the guest (the sandbox maps it there); "" without a layer.
LAYER_ROOT = _layer_root()


#: The distribution (normalized as in a `.dist-info` folder name) of each layer module.
_DISTRIBUTIONS = {
    "boto3": "boto3",
    "botocore": "botocore",
    "s3transfer": "s3transfer",
    "jmespath": "jmespath",
    "dateutil": "python_dateutil",
    "six": "six",
    "urllib3": "urllib3",
}


def _bundled_versions(names: Iterable[str]) -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in names:
        top = name.split("/", 1)[0]
        if top.endswith(".dist-info"):
            dist, _, version = top.removesuffix(".dist-info").partition("-")
            versions[dist.lower().replace("-", "_")] = version
    return versions


def prefer_bundle(bundle_has_module: Callable[[str], bool], names: Iterable[str]) -> list[str]:
    """Forget the snapshot's SDK modules that the function's bundle ships a different copy of.

    `bundle_has_module(name)` says whether the bundle has that top-level module, `names`
    are the bundle's file names. A vendored copy at the layer's own version (botocore
    pulled in by aws-xray-sdk, say) is the same code: the snapshot's stays, so the
    function does not pay for importing it again. Returns the modules forgotten.
    """
    vendored = _bundled_versions(names)
    forgotten = []
    for top in LAYER_MODULES:
        if not bundle_has_module(top):
            continue
        module = sys.modules.get(top)
        version = vendored.get(_DISTRIBUTIONS[top])
        if (
            module is not None
            and version is not None
            and version == getattr(module, "__version__", None)
        ):
            continue
        forgotten.append(top)
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]
    return forgotten
