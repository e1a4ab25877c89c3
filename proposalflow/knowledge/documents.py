"""Knowledge sources and how each kind is read into normalised text.

A source is a file (.md, .markdown, .txt, .html, .htm, .pdf, .docx) or an http(s) URL (read
through the product's web reader). Reading gives a `Document`: its source URI (the identity in
`knowledge_base`), title, category, normalised text and a content hash.

Category: the explicit `category` argument (CLI --category, an upload's form field) wins, then
the document's own front-matter (`category:` in Markdown/text), then the first sub-folder of the
folder being embedded (`knowledge/pricing/rates.md` → `pricing`).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import SourceUnreadable

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html",
            ".pdf": "pdf", ".docx": "docx"}
MAX_FILE_BYTES = 50 << 20


@dataclass(frozen=True)
class Source:
    uri: str                    # file:///abs/path, https://…, or what the caller names it (upload://…)
    path: str | None = None     # a local file to read
    url: str | None = None      # a web page to read through the reader
    category: str | None = None     # explicit: wins over front-matter
    folder_category: str | None = None  # from the sub-folder: loses to front-matter
    title: str | None = None

    @property
    def display(self) -> str:
        return self.path or self.url or self.uri


@dataclass
class Document:
    source_uri: str
    title: str
    category: str | None
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Over everything that goes into the chunks: title, category and text."""
        payload = json.dumps([self.title, self.category, self.text], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- finding sources ------------------------------------------------------------------------------
def file_uri(path: Path) -> str:
    return path.expanduser().resolve().as_uri()


def file_source(path: str | Path, category: str | None = None, *, source_uri: str | None = None,
                title: str | None = None) -> Source:
    p = Path(path).expanduser()
    return Source(uri=source_uri or file_uri(p), path=str(p.resolve()), category=category, title=title)


def url_source(url: str, category: str | None = None) -> Source:
    return Source(uri=url.strip(), url=url.strip(), category=category)


def folder_sources(folder: str | Path, category: str | None = None) -> Iterator[Source]:
    """Every readable file under `folder`, recursively, in a stable order; hidden files skipped."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise SourceUnreadable(f"{folder}: no such folder")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith((".", "_")) for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in SUFFIXES:
            continue
        sub = rel.parts[0] if len(rel.parts) > 1 else None
        yield Source(uri=file_uri(path), path=str(path), category=category, folder_category=sub)


def folder_prefix(folder: str | Path) -> str:
    """The URI prefix of every document under `folder` (what --prune looks at)."""
    return file_uri(Path(folder)).rstrip("/") + "/"


# --- reading --------------------------------------------------------------------------------------
Reader = Callable[[str], Any]  # url → a Page (.url, .title, .content)


def read_source(source: Source, reader: Reader | None = None) -> Document:
    """Read and normalise one source. Raises SourceUnreadable naming the file or URL."""
    if source.url:
        if reader is None:
            raise SourceUnreadable(f"{source.url}: URL sources need a web reader")
        page = reader(source.url)
        text = normalise(getattr(page, "content", "") or "")
        if not text:
            raise SourceUnreadable(f"{source.url}: the page has no readable text")
        title = source.title or (getattr(page, "title", None) or "").strip() or _title_from_text(text) or source.url
        meta = {"kind": "url", "final_url": getattr(page, "final_url", None) or getattr(page, "url", source.url)}
        return Document(source.uri, title, source.category or source.folder_category, text, meta)
    if not source.path:
        raise SourceUnreadable(f"{source.uri}: nothing to read")
    path = Path(source.path)
    if not path.is_file():
        raise SourceUnreadable(f"{source.display}: no such file")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SourceUnreadable(f"{source.display}: unsupported file type {path.suffix or '(none)'}; "
                               f"use {', '.join(sorted(SUFFIXES))}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SourceUnreadable(f"{source.display}: larger than {MAX_FILE_BYTES >> 20} MB")
    try:
        raw_title, text, front = _READERS[kind](path)
    except SourceUnreadable:
        raise
    except Exception as exc:  # noqa: BLE001 - a library's error on a corrupt file becomes a clear one
        raise SourceUnreadable(f"{source.display}: not a readable {kind} file ({type(exc).__name__}: {exc})") from exc
    text = normalise(text)
    if not text:
        raise SourceUnreadable(f"{source.display}: no text in the file")
    title = (source.title or str(front.pop("title", "") or "").strip() or raw_title or _title_from_text(text)
             or _title_from_name(path))
    category = source.category or str(front.pop("category", "") or "").strip() or source.folder_category
    # front-matter values as JSON would store them (a YAML date becomes its ISO text)
    metadata = {"kind": kind, "file_name": path.name, "bytes": size,
                **json.loads(json.dumps({str(k): v for k, v in front.items()}, default=str))}
    return Document(source.uri, title, category or None, text, metadata)


def normalise(text: str) -> str:
    """NFC, \\n line ends, no NULs or trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = text.replace("\u00a0", " ").replace("\u200b", "")
    if " \n" in text or "\t\n" in text:  # substring tests first: the regexes cost more than reading the file
        text = _TRAILING_SPACE.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)


def _read_markdown(path: Path) -> tuple[str | None, str, dict]:
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise SourceUnreadable(f"{path}: a binary file, not text")
    text = _decode(data)
    front: dict = {}
    match = _FRONT_MATTER.match(text)
    if match:
        import yaml

        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            raise SourceUnreadable(f"{path}: front-matter is not valid YAML ({exc})") from exc
        front = loaded if isinstance(loaded, dict) else {}
        text = text[match.end():]
    return None, text, front


def _read_html(path: Path) -> tuple[str | None, str, dict]:
    import trafilatura

    html = _decode(path.read_bytes())
    text = trafilatura.extract(html, output_format="markdown", include_tables=True, include_links=False,
                               favor_recall=True) or ""
    meta = trafilatura.extract_metadata(html)
    title = meta.title if meta is not None and meta.title else None
    return title, text, {}


def _read_pdf(path: Path) -> tuple[str | None, str, dict]:
    from pypdf import PdfReader

    reader = PdfReader(str(path), strict=False)
    pages = [(page.extract_text() or "") for page in reader.pages]
    title = None
    try:
        title = (reader.metadata or {}).get("/Title")
    except Exception:  # noqa: BLE001 - broken metadata is no reason to drop the text
        title = None
    return (str(title).strip() or None) if title else None, "\n\n".join(pages), {"pages": len(pages)}


def _read_docx(path: Path) -> tuple[str | None, str, dict]:
    import docx

    document = docx.Document(str(path))
    lines: list[str] = []
    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = docx.text.paragraph.Paragraph(block, document)
            text = paragraph.text.strip()
            if not text:
                continue
            style = (paragraph.style.name or "") if paragraph.style is not None else ""
            level = _heading_level(style)
            lines.append(("#" * level + " " + text) if level else text)
        elif tag == "tbl":
            table = docx.table.Table(block, document)
            for row in table.rows:
                lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    title = (document.core_properties.title or "").strip() or None
    return title, "\n\n".join(lines), {}


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.match(r"Heading (\d)", style)
    return min(int(match.group(1)), 3) if match else 0


_READERS = {"markdown": _read_markdown, "text": _read_markdown, "html": _read_html, "pdf": _read_pdf,
            "docx": _read_docx}


def _title_from_text(text: str) -> str | None:
    match = re.search(r"^#\s+(.+)$", text, re.M)
    return match.group(1).strip() if match else None


def _title_from_name(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip().capitalize() or path.name


def is_url(value: str) -> bool:
    return value.strip().lower().startswith(("http://", "https://"))
