"""Large objects through the S3 API: multipart uploads as boto3 and the AWS CLI make them,
objects past the in-memory blob cap, the S3 object limit, S3's multipart ETag."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from tests.conftest import Server  # noqa: E402
from tests.integration.test_s3_api import REGION, code, s3_client  # noqa: E402

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("s3mp") / "data")
    server.data_dir.mkdir(parents=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(node: Server) -> Any:
    return s3_client(node)


def test_explicit_multipart_upload(s3: Any) -> None:
    s3.create_bucket(Bucket="mp-big")
    upload = s3.create_multipart_upload(
        Bucket="mp-big", Key="big.bin", ContentType="application/x-test", Metadata={"a": "b"}
    )
    uid = upload["UploadId"]
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    etags = []
    for number, data in enumerate(parts, 1):
        answer = s3.upload_part(
            Bucket="mp-big", Key="big.bin", UploadId=uid, PartNumber=number, Body=data
        )
        assert answer["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        etags.append(answer["ETag"])
    listed = s3.list_parts(Bucket="mp-big", Key="big.bin", UploadId=uid)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [
        (1, 5 * MiB), (2, 5 * MiB), (3, 4)
    ]  # fmt: skip
    uploads = s3.list_multipart_uploads(Bucket="mp-big")["Uploads"]
    assert [u["UploadId"] for u in uploads] == [uid]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="mp-big", Key="big.bin", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]},
        )  # fmt: skip
    assert code(exc) == "InvalidPart"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="mp-big", Key="big.bin", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": etags[2]},
                                       {"PartNumber": 1, "ETag": etags[0]}]},
        )  # fmt: skip
    assert code(exc) == "InvalidPartOrder"
    done = s3.complete_multipart_upload(
        Bucket="mp-big",
        Key="big.bin",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    expected = f'"{hashlib.md5(digests).hexdigest()}-3"'
    assert done["ETag"] == expected
    got = s3.get_object(Bucket="mp-big", Key="big.bin")
    assert got["ETag"] == expected
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"a": "b"}
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(b"".join(parts)).digest()
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket="mp-big", Key="big.bin", UploadId=uid)
    assert code(exc) == "NoSuchUpload"


def test_small_parts_and_abort(s3: Any) -> None:
    s3.create_bucket(Bucket="mp-small")
    uid = s3.create_multipart_upload(Bucket="mp-small", Key="k")["UploadId"]
    first = s3.upload_part(Bucket="mp-small", Key="k", UploadId=uid, PartNumber=1, Body=b"a")
    second = s3.upload_part(Bucket="mp-small", Key="k", UploadId=uid, PartNumber=2, Body=b"b")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="mp-small", Key="k", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": first["ETag"]},
                                       {"PartNumber": 2, "ETag": second["ETag"]}]},
        )  # fmt: skip
    assert code(exc) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket="mp-small", Key="k", UploadId=uid)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket="mp-small", Key="k", UploadId=uid, PartNumber=3, Body=b"c")
    assert code(exc) == "NoSuchUpload"
    assert s3.list_objects_v2(Bucket="mp-small")["KeyCount"] == 0


def test_upload_file_and_download_file_past_the_blob_cap(s3: Any, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="files")
    source = tmp_path / "source.bin"
    with source.open("wb") as out:
        for _ in range(20):
            out.write(os.urandom(MiB))
    # boto3's defaults: multipart above 8 MB, 8 MB parts, ranged parallel downloads.
    s3.upload_file(str(source), "files", "twenty.bin")
    head = s3.head_object(Bucket="files", Key="twenty.bin")
    assert head["ContentLength"] == 20 * MiB
    assert head["ETag"].endswith('-3"')
    target = tmp_path / "target.bin"
    s3.download_file("files", "twenty.bin", str(target))
    assert (
        hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    )
    # One PutObject past FIREBOX_BLOB_MAX_OBJECT_BYTES (6 MiB): the S3 API streams it.
    seven = os.urandom(7 * MiB)
    no_multipart = TransferConfig(multipart_threshold=64 * MiB)
    (tmp_path / "seven.bin").write_bytes(seven)
    s3.upload_file(str(tmp_path / "seven.bin"), "files", "seven.bin", Config=no_multipart)
    assert s3.get_object(Bucket="files", Key="seven.bin")["Body"].read() == seven


def test_object_limit_is_enforced(server_factory: Any) -> None:
    node = server_factory(env={"FIREBOX_S3_MAX_OBJECT_BYTES": str(MiB)})
    node.start()
    s3 = s3_client(node)
    s3.create_bucket(Bucket="limited")
    s3.put_object(Bucket="limited", Key="ok", Body=b"x" * MiB)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="limited", Key="big", Body=b"x" * (MiB + 1))
    assert code(exc) == "EntityTooLarge"


def _aws(node: Server, *args: str, cwd: Path) -> str:
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI is not installed")
    creds = node.credentials
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    done = subprocess.run(
        [aws, "--endpoint-url", node.url, *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_aws_cli_cp_ls_presign_rm(node: Server, tmp_path: Path) -> None:
    import httpx

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MiB))
    (tmp_path / "small.txt").write_text("hello from the cli")
    _aws(node, "s3", "mb", "s3://cli-bucket", cwd=tmp_path)
    _aws(node, "s3", "cp", "small.txt", "s3://cli-bucket/docs/small.txt", cwd=tmp_path)
    _aws(node, "s3", "cp", "big.bin", "s3://cli-bucket/big.bin", cwd=tmp_path)
    listing = _aws(node, "s3", "ls", "s3://cli-bucket/", cwd=tmp_path)
    assert "PRE docs/" in listing
    assert "big.bin" in listing
    assert "cli-bucket" in _aws(node, "s3", "ls", cwd=tmp_path)
    _aws(node, "s3", "cp", "s3://cli-bucket/big.bin", "back.bin", cwd=tmp_path)
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    url = _aws(node, "s3", "presign", "s3://cli-bucket/docs/small.txt", cwd=tmp_path).strip()
    assert httpx.get(url).text == "hello from the cli"
    _aws(node, "s3", "rm", "--recursive", "s3://cli-bucket/", cwd=tmp_path)
    _aws(node, "s3", "rb", "s3://cli-bucket", cwd=tmp_path)
    assert "cli-bucket" not in _aws(node, "s3", "ls", cwd=tmp_path)
