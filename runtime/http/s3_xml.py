"""The XML of the S3 API: response documents built from nested (name, value) pairs, request
documents parsed with a bound, S3's date formats (front-end layer)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from email.utils import formatdate
from urllib.parse import quote

from firebox.runtime.http.s3_errors import XML_TYPE, S3Error
from starlette.responses import Response

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
# A value is text or a list of (name, value) children; None leaves the element out.
Value = str | int | bool | list[tuple[str, "Value | None"]]


def _fill(parent: ET.Element, children: list[tuple[str, Value | None]]) -> None:
    for name, value in children:
        if value is None:
            continue
        child = ET.SubElement(parent, name)
        if isinstance(value, list):
            _fill(child, value)
        elif isinstance(value, bool):
            child.text = "true" if value else "false"
        else:
            child.text = str(value)


def document(root: str, children: list[tuple[str, Value | None]]) -> bytes:
    """Return the XML document `<root xmlns=S3>children</root>`."""
    element = ET.Element(root, xmlns=NAMESPACE)
    _fill(element, children)
    return bytes(ET.tostring(element, encoding="UTF-8", xml_declaration=True))


def xml_response(
    root: str, children: list[tuple[str, Value | None]], status: int = 200
) -> Response:
    """Return an XML document response."""
    return Response(document(root, children), status_code=status, media_type=XML_TYPE)


def parse(body: bytes) -> ET.Element:
    """Parse a request document (namespaces stripped from tags); raises MalformedXML.

    Document type declarations are refused, so no entity can expand (expat also bounds
    amplification); the caller bounded the body's size.
    """
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise _malformed()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise _malformed() from None
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.rpartition("}")[2]
    return root


def _malformed() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published"
        " schema.",
    )


def iso_time(when: float) -> str:
    """Return `when` (epoch seconds) as S3 writes times in documents."""
    millis = int(when * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{millis:03d}Z"


def http_time(when: float) -> str:
    """Return `when` as an HTTP date (Last-Modified)."""
    return formatdate(int(when), usegmt=True)


def encode_key(key: str, url: bool) -> str:
    """Return a key as a listing shows it (`encoding-type=url`: percent-encoded)."""
    return quote(key, safe="/") if url else key
