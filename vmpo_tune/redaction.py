"""The one place that removes secrets from URLs and from any text that may hold one.

A database URL can carry its password in several ways, and the drivers honour all of them:

* in the userinfo: ``postgresql://user:SECRET@host/db``;
* as a query parameter: ``postgresql://user@host/db?password=SECRET`` (also ``passwd``,
  ``pwd``, ``pass``, ``sslpassword``, ``secret``, ``token``, ``api_key``, in any letter case,
  and any key that ends in one of those, such as ``ssl_key_password``).

:func:`redact_url` replaces each such value by ``***``; :func:`redact` does it for every
URL inside a longer text (a command line, an error message). Every place that shows or
stores a URL or a command line goes through one of them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
SECRET_KEYS = ("password", "passwd", "pwd", "pass", "secret", "token", "api_key", "apikey")
# scheme://<everything up to whitespace or a quote>
_URL = re.compile(r"\b[a-zA-Z][\w+.-]*://[^\s'\"<>]*")
_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@?#]*):(?P<password>.*)@")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<key>[^=&;#\s]+)=(?P<value>[^&;#\s]*)")


def is_secret_key(key: str) -> bool:
    """True for query keys that carry a credential (``password``, ``sslpassword``, ``PWD``, ...)."""
    return key.lower().endswith(SECRET_KEYS)


def redact_url(url: str) -> str:
    """``url`` with every password (userinfo or query parameter) replaced by ``***``."""
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url, count=1)

    def query(m: re.Match) -> str:
        if is_secret_key(m["key"]):
            return f"{m['sep']}{m['key']}={MASK}"
        return m.group(0)

    head, sep, tail = url.partition("?")
    return head + sep + _QUERY_PARAM.sub(query, sep + tail)[len(sep) :] if sep else head


def redact(text: str) -> str:
    """``text`` with the secrets of every URL in it replaced by ``***``."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to every string inside nested dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line goes through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
