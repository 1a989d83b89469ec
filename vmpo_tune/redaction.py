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
# a secret's value runs to the next "&": drivers split the query on "&" only, so "a;b c#d" is one password
_SECRET_PARAM = re.compile(r"(?P<sep>[?&;])(?P<key>[^=&;#\s]+)=(?P<value>[^&]*)")
_SCHEME = re.compile(r"[a-zA-Z][\w+.-]*://")
# "scheme://user:" whose "@" lies beyond a space or a quote (a password with a space or a quote in a text)
_OPEN_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@?#\s'\"]*:)(?P<password>[^@\n]*)@")


def is_secret_key(key: str) -> bool:
    """True for query keys that carry a credential (``password``, ``sslpassword``, ``PWD``, ``pass%77ord``, ...)."""
    from urllib.parse import unquote

    return unquote(key).lower().endswith(SECRET_KEYS)


def redact_url(url: str) -> str:
    """``url`` (one whole URL, spaces and quotes included) with every password replaced by ``***``.

    The userinfo's password runs to the last ``@`` (a raw ``@`` inside it included); a secret
    query value runs to the next ``&`` or ``#`` (a ``;`` or a space inside it included).
    """
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url, count=1)
    head, sep, tail = url.partition("?")
    if not sep:
        return head
    out, pos, query = [], 0, sep + tail
    for m in _QUERY_PARAM.finditer(query):
        if m.start() < pos:
            continue
        out.append(query[pos : m.start()])
        if is_secret_key(m["key"]):
            whole = _SECRET_PARAM.match(query, m.start())
            out.append(f"{m['sep']}{m['key']}={MASK}")
            pos = whole.end()
        else:
            out.append(m.group(0))
            pos = m.end()
    out.append(query[pos:])
    return head + "".join(out)


def redact(text: str) -> str:
    """``text`` with the secrets of every URL in it replaced by ``***``.

    In free text a URL ends at a space or a quote, so a password holding one is found by its
    userinfo (``scheme://user:`` up to the next ``@`` on the same line) before URLs are cut out.
    """
    text = _OPEN_USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact_command(argv: list[str]) -> str:
    """A command line for display or storage: each argument redacted whole (a URL with a space or a quote
    in its password is one argument), then quoted as a shell would need it."""
    import shlex

    return shlex.join(_redact_argument(a) for a in argv)


def _redact_argument(arg: str) -> str:
    """One command-line argument: a URL in it (``URL`` or ``--storage=URL``) redacted whole, then the rest."""
    start = _SCHEME.search(arg)
    if start is None:
        return redact(arg)
    return redact(arg[: start.start()] + redact_url(arg[start.start() :]))


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
