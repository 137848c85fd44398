"""A marker-delimited section of a markdown file, rewritten in place by the benchmark scripts
and the reports (``eipnn-label --report``).

A section is the text from its begin marker (``<!-- name:begin -->``) to its end marker,
both included. Writing it again replaces that text and leaves the rest of the file alone;
a file without the markers gets the section appended, a missing file is started from a
heading.
"""
from __future__ import annotations

from pathlib import Path


def _bounds(text: str, begin: str, end: str) -> tuple[int, int]:
    """Where the section starts (its begin marker) and where its end marker starts; -1 for
    a section the text does not hold."""
    start = text.find(begin)
    return start, (text.find(end, start) if start >= 0 else -1)


def read_section(path: Path, begin: str, end: str) -> str:
    """The section now in ``path``, from its begin marker to (not including) its end
    marker; '' when the file or the section does not exist."""
    text = path.read_text() if path.exists() else ""
    start, stop = _bounds(text, begin, end)
    return text[start:stop] if stop >= 0 else ""


def write_section(path: Path, section: str, begin: str, end: str, heading: str) -> None:
    """Put ``section`` (it starts with ``begin`` and ends with ``end``) into ``path`` in place
    of the old one, or append it; a new file starts with ``heading`` (e.g. "# Results")."""
    text = path.read_text() if path.exists() else heading + "\n"
    section = section.rstrip("\n")
    start, stop = _bounds(text, begin, end)
    if stop >= 0:
        text = text[:start] + section + text[stop + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def publish_section(path: Path, section: str, begin: str, end: str, heading: str) -> None:
    """Print a generated section, then put it into ``path`` (``write_section``)."""
    print(section)
    write_section(path, section, begin, end, heading)
