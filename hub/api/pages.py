"""What the hub's browser pages (``/dashboard``, ``/staff``) share: their HTML with the
asset URLs under the app's ``root_path``, and their files shipped in the package.

A page's files are exactly those in its folder, listed once at import: any other name (a
path outside the folder, a name too long for the file system) is a 404, never a read of
the disk. They are served inline and revalidated (ETag), so an upgrade shows at once.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

from litestar.exceptions import NotFoundException
from litestar.response import File

# by suffix; litestar adds "; charset=utf-8" to the text types
MEDIA_TYPES: Final[dict[str, str]] = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",  # compiled while streamed (WebAssembly.instantiateStreaming)
    ".md": "text/markdown",
}


def page_html(template: str, root_path: str, assets_path: str) -> str:
    """``template`` with ``{assets}`` replaced by the assets' URL under ``root_path``."""
    assets = html.escape(root_path.rstrip("/") + assets_path, quote=True)
    return template.replace("{assets}", assets)


class ShippedAssets:
    """The files of one page's folder, by their path relative to it."""

    def __init__(self, folder: Path, what: str) -> None:
        self.files: dict[str, Path] = {
            p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()
        }
        self._what = what

    def response(self, name: str) -> File:
        """The file ``name`` as a response; 404 for anything not shipped."""
        path = self.files.get(name.lstrip("/"))
        if path is None:
            raise NotFoundException(f"No such file of the {self._what}.")
        return File(
            path=path,
            filename=path.name,
            content_disposition_type="inline",
            media_type=MEDIA_TYPES.get(path.suffix, "text/plain"),
            headers={"Cache-Control": "no-cache"},
        )
