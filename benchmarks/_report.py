"""Write one marked section of BENCHMARKS.md (or RESULTS.md), leaving the others as they are."""

from __future__ import annotations

from pathlib import Path

HEADER = "# Benchmarks\n\nEvery number here comes from a script in `benchmarks/`; rerun it to refresh its section.\n"


def write_section(path: Path, key: str, title: str, body: str, header: str = HEADER) -> None:
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n## {title}\n\n{body}\n{end}"
    text = path.read_text() if path.exists() else header
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
