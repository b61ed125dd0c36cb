"""The runtime layer of Python functions: boto3, botocore and tzdata, as Lambda ships them (compiler layer).

Lambda's Python runtime puts the AWS SDK (boto3, botocore and their dependencies) in
`/var/runtime` and has the IANA time-zone database. firebox builds the same layer once
per installation by copying the distributions installed with firebox itself (no
network, the same files on every node of one version) into a content-addressed folder.
The interpreter build imports the SDK from it into its snapshot; at run time the
sandbox maps it read-only into every Python guest, because botocore reads its service
models and tzdata its zone files from disk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

#: The distributions of the layer: Lambda's runtime SDK and what it needs, and tzdata.
DISTRIBUTIONS = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
    "tzdata",
)


def layer_versions() -> dict[str, str]:
    """Return {distribution: installed version}; raises `PackageNotFoundError` if one is missing."""
    return {name: metadata.version(name) for name in DISTRIBUTIONS}


def layer_key() -> str:
    """Return a short digest of the layer's contents (its distributions and versions)."""
    text = "\n".join(f"{name}=={version}" for name, version in layer_versions().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _copy_distribution(name: str, target: Path) -> None:
    dist = metadata.distribution(name)
    for file in dist.files or ():
        relative = Path(str(file))
        if relative.parts[0] in ("..", "bin") or relative.suffix in (".pyc", ".pyo"):
            continue  # console scripts and caches are useless in a guest
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


def build_runtime_layer(cache_dir: Path) -> Path:
    """Return the layer's folder under `cache_dir`, copying it there on first use.

    The folder appears by atomic rename, so concurrent callers never see a partial
    layer. Raises `PackageNotFoundError` when a distribution is not installed.
    """
    target = Path(cache_dir) / f"runtime-layer-{layer_key()}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="layer-", dir=target.parent))
    try:
        for name in DISTRIBUTIONS:
            _copy_distribution(name, staging)
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
