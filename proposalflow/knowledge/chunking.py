"""Splitting a document into chunks that keep their headings.

Markdown headings (`#` … `###`, outside code fences) cut a document into sections; each section
is split by LangChain's RecursiveCharacterTextSplitter (paragraphs, then lines, sentences, words)
to at most `size` characters with `overlap`. Every chunk starts with its heading path
("Document title › Section › Subsection"), so a chunk read alone — by the embedder, by full-text
search or in a proposal's citation — still says what it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
SEPARATOR = " › "


@dataclass(frozen=True)
class ChunkSettings:
    size: int = 1200
    overlap: int = 150

    def __post_init__(self):
        if not 100 <= self.size <= 8000:
            raise ValueError("chunk size must be between 100 and 8000 characters")
        if not 0 <= self.overlap < self.size // 2:
            raise ValueError("chunk overlap must be at least 0 and less than half the chunk size")

    @property
    def signature(self) -> str:
        """Stored with each document: chunks made with other settings are re-made."""
        return f"md-v1:{self.size}:{self.overlap}"


def chunk_settings_from(settings) -> ChunkSettings:
    """PROPOSALFLOW_KB_CHUNK_SIZE / PROPOSALFLOW_KB_CHUNK_OVERLAP."""
    return ChunkSettings(settings.kb_chunk_size, settings.kb_chunk_overlap)


@dataclass(frozen=True)
class Chunk:
    position: int
    heading: str
    text: str  # heading path + blank line + body: what is embedded, searched and cited

    @property
    def char_count(self) -> int:
        return len(self.text)

    @property
    def token_count(self) -> int:
        """An estimate (≈ 4 characters per token for English)."""
        return max(1, (len(self.text) + 3) // 4)


def sections(text: str) -> list[tuple[list[str], str]]:
    """(heading path, body) pairs in order; the text before the first heading has an empty path."""
    result: list[tuple[list[str], str]] = []
    path: list[str] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            result.append((list(path), content))
        body.clear()

    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path[:] = path[: level - 1] + [""] * max(0, level - 1 - len(path))
            path.append(match.group(2).strip())
            path[:] = [p for p in path if p] if level == 1 else path
        else:
            body.append(line)
    flush()
    return result


def chunk_document(title: str, text: str, settings: ChunkSettings = ChunkSettings()) -> list[Chunk]:
    chunks: list[Chunk] = []
    for path, body in sections(text):
        headings = [h for h in path if h]
        if title and (not headings or headings[0].casefold() != title.casefold()):
            headings.insert(0, title)
        heading = SEPARATOR.join(headings)
        # the heading is part of every piece, so the pieces are cut shorter by its length
        room = max(settings.size - len(heading) - 2, settings.size // 2)
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=room, chunk_overlap=min(settings.overlap, room // 4),
            separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""], keep_separator="end",
        )
        for piece in splitter.split_text(body):
            piece = piece.strip()
            if piece:
                chunks.append(Chunk(len(chunks), heading, f"{heading}\n\n{piece}" if heading else piece))
    return chunks
