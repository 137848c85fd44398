"""A marker-delimited section of a markdown file, rewritten in place by the benchmark scripts
and the reports (``eipnn-label --report``).

A section is the text from its begin marker (``<!-- name:begin -->``) to its end marker,
both included. Writing it again replaces that text and leaves the rest of the file alone;
a file without the markers gets the section appended, a missing file is started from a
heading.
"""
from __future__ import annotations

from pathlib import Path


def write_section(path: Path, section: str, begin: str, end: str, heading: str) -> None:
    """Put ``section`` (it starts with ``begin`` and ends with ``end``) into ``path`` in place
    of the old one, or append it; a new file starts with ``heading`` (e.g. "# Results")."""
    text = path.read_text() if path.exists() else heading + "\n"
    section = section.rstrip("\n")
    start = text.find(begin)
    stop = text.find(end, start) if start >= 0 else -1
    if stop >= 0:
        text = text[:start] + section + text[stop + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def publish_section(path: Path, section: str, begin: str, end: str, heading: str) -> None:
    """Print a generated section, then put it into ``path`` (``write_section``)."""
    print(section)
    write_section(path, section, begin, end, heading)
