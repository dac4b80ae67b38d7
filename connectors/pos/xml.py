"""Hardened XML reading for POS payloads (untrusted bytes from terminals).

:func:`parse_xml` parses with defusedxml's parser with DTDs, entity declarations and
external references all forbidden (billion laughs, XXE and remote DTDs are refused the
moment the parser meets the declaration, before anything is expanded or fetched), caps
the body size, and counts elements and depth *while* parsing so a flood of elements is
stopped early. Every failure is a :class:`~hub.domain.errors.DomainError`:

- ``payload_too_large`` (413): more than ``max_bytes``;
- ``xml_forbidden`` (400): a DTD, an entity declaration or an external reference;
- ``malformed_xml`` (400): not well-formed (or an encoding that cannot be read);
- ``invalid_pos_payload`` (422): more than ``max_elements`` elements or deeper than
  ``max_depth``.

Multi-byte Chinese encodings (GBK, GB2312, GB18030, Big5), common on terminals in China,
are not understood by expat; a body declaring one is transcoded to UTF-8 first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from connectors.pos import XML_MAX_BODY, check_size
from hub.domain.errors import refuse

MAX_ELEMENTS = 10_000
MAX_DEPTH = 64

_DECLARED = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*<\?xml\s[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z0-9._\-]{1,40})[\"']"
)
_DECLARED_TEXT = re.compile(r"(encoding\s*=\s*)([\"'])[A-Za-z0-9._\-]{1,40}\2")
_TRANSCODE = {"gbk", "gb2312", "gb18030", "cp936", "big5", "big5hkscs", "cp950", "x-gbk"}


class _TooLarge(Exception):
    pass


class _LimitedBuilder(ET.TreeBuilder):
    """A tree builder that stops the parse past ``max_elements`` or ``max_depth``."""

    def __init__(self, max_elements: int, max_depth: int) -> None:
        super().__init__()
        self.max_elements = max_elements
        self.max_depth = max_depth
        self.count = 0
        self.depth = 0

    def start(self, tag: Any, attrs: Any) -> ET.Element:
        self.count += 1
        self.depth += 1
        if self.count > self.max_elements:
            raise _TooLarge(f"more than {self.max_elements} elements")
        if self.depth > self.max_depth:
            raise _TooLarge(f"elements nested deeper than {self.max_depth}")
        return super().start(tag, attrs)

    def end(self, tag: Any) -> ET.Element:
        self.depth -= 1
        return super().end(tag)


def _transcode(body: bytes) -> bytes:
    """UTF-8 for a body declaring a multi-byte encoding expat cannot read."""
    m = _DECLARED.match(body)
    if m is None:
        return body
    encoding = m.group(1).decode("ascii").lower()
    if encoding not in _TRANSCODE:
        return body
    try:
        gbk = encoding in ("gbk", "gb2312", "cp936", "x-gbk")  # gb18030 reads them all
        text = body.decode("gb18030" if gbk else encoding)
    except (UnicodeDecodeError, LookupError):
        raise refuse(
            "malformed_xml", f"The body is not valid {encoding.upper()}."
        ) from None
    return _DECLARED_TEXT.sub(r"\1\2UTF-8\2", text, count=1).encode("utf-8")


def parse_xml(
    body: bytes,
    *,
    max_bytes: int = XML_MAX_BODY,
    max_elements: int = MAX_ELEMENTS,
    max_depth: int = MAX_DEPTH,
) -> ET.Element:
    """The root element of ``body``, parsed safely (see the module docstring)."""
    check_size(body, max_bytes)
    source = _transcode(body)
    parser = DefusedXMLParser(
        target=_LimitedBuilder(max_elements, max_depth),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        parser.feed(source)
        root: ET.Element = parser.close()
    except DefusedXmlException as exc:
        raise refuse(
            "xml_forbidden",
            f"The XML declares a DTD, entities or external references ({type(exc).__name__});"
            " they are refused.",
        ) from None
    except _TooLarge as exc:
        raise refuse(
            "invalid_pos_payload",
            f"The XML has {exc}.",
            errors=[{"field": "body", "message": str(exc)}],
        ) from None
    except ET.ParseError as exc:
        raise refuse("malformed_xml", f"The body is not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # e.g. "multi-byte encodings are not supported"
        raise refuse("malformed_xml", f"The body cannot be read as XML: {exc}") from None
    return root


def local_name(tag: object) -> str:
    """``Transaction`` for ``{http://…}Transaction`` (comments and PIs have no name)."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def namespace(tag: object) -> str:
    if not isinstance(tag, str) or not tag.startswith("{"):
        return ""
    return tag[1:].partition("}")[0]


__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "local_name", "namespace", "parse_xml"]
