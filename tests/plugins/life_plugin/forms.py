"""Reading the settings form as a user's browser would: controls, options, help, errors, CSRF."""
from __future__ import annotations

from html.parser import HTMLParser
from typing import Any, Dict, List, Optional, Tuple


class FormParser(HTMLParser):
    """The settings form's controls (by field name), select options, help texts and CSRF token."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: Dict[str, Dict[str, Optional[str]]] = {}
        self.options: Dict[str, List[Dict[str, Any]]] = {}
        self.help: Dict[str, str] = {}
        self.errors: Dict[str, str] = {}
        self.csrf: Optional[str] = None
        self._select: Optional[str] = None
        self._option: Optional[Dict[str, Any]] = None
        self._text: Optional[Tuple[Dict[str, str], str]] = None
        self._field: Optional[str] = None

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        a = dict(attrs)
        ident, cls = a.get("id") or "", a.get("class") or ""
        if tag in ("input", "select") and ident.startswith("f-"):
            self.controls[ident[2:]] = {"tag": tag, **a}
            if tag == "select":
                self._select = ident[2:]
                self.options[self._select] = []
        elif tag == "input" and a.get("name") == "csrf_token":
            self.csrf = a.get("value")
        elif tag == "option" and self._select:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "label": ""}
            self.options[self._select].append(self._option)
        elif tag == "div" and ident.startswith("h-"):
            self._text = (self.help, ident[2:])
        elif tag == "div" and "data-field" in a:
            self._field = a["data-field"]
        elif tag == "div" and "ivp-field-error" in cls:
            self._text = (self.errors, self._field or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "option":
            self._option = None
        elif tag == "div":
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option["label"] += data
        if self._text is not None:
            store, key = self._text
            store[key] = store.get(key, "") + data


def parse_form(page: str) -> FormParser:
    """Parse a settings page.

    :param page: the HTML."""
    parser = FormParser()
    parser.feed(page)
    return parser
