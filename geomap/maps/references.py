"""What a map page loads: the URLs of its scripts, stylesheets, fonts and images.

:func:`asset_references` lists them from the HTML (``src``/``href`` of the elements that
load something, ``url()``/``@import`` in styles), :func:`remote_assets` those that would
go to the network. :mod:`geomap.maps.assets` uses them to refuse a page that would need
the network, and the tests to prove a page needs nothing but its origin.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: ``url(...)`` in CSS: the URL in group ``dq``, ``sq`` or ``bare``.
CSS_URL = re.compile(
    r"url\(\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^)\"'\s]*))\s*\)", re.IGNORECASE
)
#: ``@import "..."`` in CSS: the URL in group ``dq`` or ``sq``.
CSS_IMPORT = re.compile(r"@import\s+(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)')", re.IGNORECASE)


def is_remote(url: str) -> bool:
    """Whether loading ``url`` goes to the network (http, https or ``//host``).

    Parameters
    ----------
    url : str

    Returns
    -------
    bool
    """
    # Scheme-relative "//host/x" goes to the network as surely as "https://host/x".
    lowered = url.strip().lower()
    return lowered.startswith(("http://", "https://", "//"))


class _References(HTMLParser):
    """Collects what a page loads: src/href of loading elements and CSS url()/@import."""

    _SRC_TAGS = frozenset(
        {"script", "img", "iframe", "embed", "source", "audio", "video", "input", "track"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in self._SRC_TAGS and values.get("src"):
            self.found.append(values["src"])
        if tag == "link" and values.get("href"):
            # Every <link> that loads something: stylesheet, icon, preload, manifest...
            rel = values.get("rel", "").lower().split()
            if not set(rel) <= {"canonical", "alternate", "author", "help", "license", "me"}:
                self.found.append(values["href"])
        if tag == "object" and values.get("data"):
            self.found.append(values["data"])
        if values.get("srcset"):
            self.found.extend(part.split()[0] for part in values["srcset"].split(",") if part)
        if values.get("style"):
            self.found.extend(css_references(values["style"]))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        # <script> content is code, not a reference (Leaflet's own attribution link is a
        # string there); <style> content is CSS.
        if self._in_style:
            self.found.extend(css_references(data))


def css_references(css: str) -> list[str]:
    """The URLs a stylesheet loads (``url()`` and ``@import``), without ``data:`` URIs.

    Parameters
    ----------
    css : str
        Stylesheet text or a ``style`` attribute.

    Returns
    -------
    list of str
    """
    found = []
    for match in CSS_URL.finditer(css):
        found.append(next(v for v in (match["dq"], match["sq"], match["bare"]) if v is not None))
    for match in CSS_IMPORT.finditer(css):
        found.append(match["dq"] if match["dq"] is not None else match["sq"])
    return [url for url in found if url and not url.startswith(("data:", "#"))]


def asset_references(html: str) -> list[str]:
    """Every URL a page loads as an asset, except ``data:`` URIs.

    Scans ``src``/``href`` of the elements that load something (``<script>``,
    ``<link>``, ``<img>``...) and ``url()``/``@import`` in ``<style>`` elements and
    ``style`` attributes. Script code is not scanned. Navigation links (``<a href>``) are
    not assets.

    Parameters
    ----------
    html : str
        A page.

    Returns
    -------
    list of str
        In document order, duplicates kept.
    """
    parser = _References()
    parser.feed(html)
    parser.close()
    return parser.found


def remote_assets(html: str) -> list[str]:
    """The asset URLs of a page that would go to the network (http, https, ``//host``).

    Parameters
    ----------
    html : str
        A page.

    Returns
    -------
    list of str
    """
    return [url for url in asset_references(html) if is_remote(url)]
