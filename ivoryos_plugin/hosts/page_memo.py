"""What the response hooks work out from a page's bytes alone (the CDN rewriting, where the CSRF tokens
go), remembered per page without hashing the page.

IvoryOS renders the same page again and again, each time as new bytes. A dict keyed by the page hashes
all of it on each lookup (about 12 µs for a 40 KB page in a loop, several times that in a server's
request thread); :class:`PageMemo` keys it by a fingerprint (the length, the first and last
:data:`EDGE` bytes) and compares the page it kept with the new one byte for byte, which costs a
fraction of a hash, and nothing when it is the very object it kept (what one hook hands the next: found
by its identity first).
A different page with the same fingerprint is worked out again and replaces it: the answer is always
the one for these exact bytes."""
from __future__ import annotations

from typing import Dict, Generic, Hashable, Optional, Tuple, TypeVar

__all__ = ["PageMemo", "EDGE"]

#: the bytes at each end of a page that its fingerprint holds
EDGE = 256
T = TypeVar("T")


class PageMemo(Generic[T]):
    """A bounded memo from a page's bytes (and an extra key, such as a URL) to a value.

    :param keep: how many pages are kept (more: all are forgotten, then kept again).
    :param largest: the largest page kept, in bytes (a larger one is never kept)."""

    def __init__(self, keep: int, largest: int) -> None:
        self.keep, self.largest = keep, largest
        self._kept: Dict[Tuple[Hashable, ...], Tuple[bytes, T]] = {}
        #: the same entries by the identity of the page object kept (alive while kept, so never another's)
        self._objects: Dict[Tuple[int, Hashable], Tuple[bytes, T]] = {}

    def get(self, page: bytes, extra: Hashable = None) -> Optional[T]:
        """The value kept for exactly ``page`` (and ``extra``), or None.

        :param page: the page's bytes.
        :param extra: what else the value depends on."""
        found = self._objects.get((id(page), extra))
        if found is not None and found[0] is page:
            return found[1]
        found = self._kept.get((len(page), page[:EDGE], page[-EDGE:], extra))
        if found is not None and (found[0] is page or found[0] == page):
            return found[1]
        return None

    def holds(self, page: bytes, extra: Hashable = None) -> bool:
        """Whether ``page`` is the very object kept (not only equal bytes): the object stays alive while
        kept, so a memo of what is made from it may key it by its identity.

        :param page: the page's bytes.
        :param extra: what else the value depends on."""
        found = self._objects.get((id(page), extra))
        return found is not None and found[0] is page

    def put(self, page: bytes, value: T, extra: Hashable = None) -> None:
        """Keep ``value`` for ``page`` (and ``extra``), unless the page is larger than :attr:`largest`.

        :param page: the page's bytes.
        :param value: what was worked out from it.
        :param extra: what else the value depends on."""
        if len(page) > self.largest:
            return
        if len(self._kept) >= self.keep:
            self.clear()
        key = (len(page), page[:EDGE], page[-EDGE:], extra)
        replaced = self._kept.get(key)
        if replaced is not None:
            self._objects.pop((id(replaced[0]), extra), None)
        self._kept[key] = self._objects[(id(page), extra)] = (page, value)

    def clear(self) -> None:
        """Forget every page."""
        self._kept.clear()
        self._objects.clear()

    def __len__(self) -> int:
        return len(self._kept)
