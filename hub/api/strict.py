"""Strict body decoding, once: JSON types must match exactly (no "12800" for 12800).

Litestar converts request bodies leniently (``strict=False``: numeric strings become
integers). For money that is a trap, so handlers whose bodies carry amounts name
:class:`Strict` as their ``dto``: litestar hands it the raw body, which it decodes
once, straight into the handler's type with msgspec's strict decoder, and refuses a
mismatch with ``invalid_request`` naming the field (``malformed_json`` for bytes that
are not JSON). The OpenAPI document describes the body exactly as without the DTO.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import msgspec
from litestar import Request
from litestar.dto import AbstractDTO, DTOConfig

from hub.domain.errors import DomainError, refuse

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto._backend import DTOBackend
    from litestar.dto.data_structures import DTOFieldDefinition
    from litestar.openapi.spec import Reference, Schema
    from litestar.typing import FieldDefinition

T = TypeVar("T")
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED = re.compile(r"(?:unknown|missing required) field `([^`]*)`")


async def raw_body(request: Request[Any, Any, Any]) -> bytes:
    return await request.body()


def strict(raw: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        # the typed decoder stops at the first wrong value; bytes that are no JSON at all
        # (e.g. trailing garbage after the object) are malformed_json whatever they hold
        # (a refused body only: an accepted one is decoded once)
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError as not_json:
            raise _malformed(not_json) from None
        raise _invalid(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise _malformed(exc) from None


def _malformed(exc: msgspec.DecodeError) -> DomainError:
    detail = str(exc)
    if not detail.startswith("JSON is malformed"):
        detail = f"JSON is malformed: {detail}"
    return refuse("malformed_json", detail)


def _invalid(message: str) -> DomainError:
    """``invalid_request`` naming the field (as litestar's validation errors do: an unknown
    or missing field is named by its own path, not its parent's)."""
    at = _PATH.search(message)
    path = at.group(1) if at else ""
    message = message[: at.start()] if at else message
    named = _NAMED.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    field = path or "body"
    return refuse(
        "invalid_request", f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


class Strict(AbstractDTO[T]):
    """``dto=Strict[Model]``: the request body decoded once, strictly (see the module).

    Only for request bodies: give the handler ``return_dto=None``.
    """

    config: ClassVar[DTOConfig] = DTOConfig()

    def decode_bytes(self, value: bytes) -> Any:
        return strict(value, self.model_type)

    def decode_builtins(self, value: dict[str, Any]) -> Any:  # form data: not for JSON APIs
        return msgspec.convert(value, self.model_type, strict=True)

    @classmethod
    def create_for_field_definition(
        cls,
        field_definition: FieldDefinition,
        handler_id: str,
        backend_cls: type[DTOBackend] | None = None,
    ) -> None:
        """No transfer model: msgspec decodes into the model type itself."""

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        return schema_creator.for_field_definition(field_definition)

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False
