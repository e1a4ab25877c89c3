"""A proposal (`ProposalContent`) as a document: HTML (the local .html, and what Google Drive
converts into a Google Doc) and .docx (python-docx).

Both use the content model's derived `body` (Markdown with `[n]` citation markers) and numbered
`references`: nothing is numbered here. These documents go to the client, so a reference shows its
title and, when it has one, its public web link — not knowledge-base file paths or chunk ids.
Markdown is parsed with markdown-it (CommonMark, raw HTML off: a model's words never become markup).
"""

from __future__ import annotations

import html
import re
import unicodedata
from pathlib import Path

from markdown_it import MarkdownIt

from ..proposals.schema import OFFLINE_MODEL, ProposalContent

_MD = MarkdownIt("commonmark", {"html": False})
_MARKER = re.compile(r"\[(\d+)\]")
_SLUG_DROP = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_length: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _SLUG_DROP.sub("-", ascii_text).strip("-")[:max_length].strip("-") or "untitled"


# ── HTML ────────────────────────────────────────────────────────────────────────────────────────

_CSS = """body{font-family:Arial,Helvetica,sans-serif;max-width:46em;margin:2em auto;line-height:1.5;color:#222}
h1{font-size:1.9em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#666}sup a{text-decoration:none}.note{color:#666;font-style:italic;margin-top:2em}"""


def _markdown_html(text: str) -> str:
    rendered = _MD.render(text)
    return _MARKER.sub(lambda m: f'<sup><a href="#ref-{m.group(1)}">[{m.group(1)}]</a></sup>', rendered)


def render_html(content: ProposalContent, *, version: int | None = None) -> str:
    """A complete, self-contained HTML document."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{e(content.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{e(content.title)}</h1>",
        f'<p class="meta">Prepared for {e(content.client.name)}'
        + (f" · version {version}" if version else "") + "</p>",
        "<h2>Executive summary</h2>", _markdown_html(content.executive_summary.strip()),
    ]
    for section in content.sections:
        parts += [f'<h2 id="{e(section.id)}">{e(section.heading)}</h2>', _markdown_html(section.body)]
    if content.references:
        parts += ["<h2>References</h2>", "<ol>"]
        for ref in content.references:  # the client sees a source's title and its public link, not our file paths
            link = f' — <a href="{e(ref.url, quote=True)}">{e(ref.url)}</a>' if _public(ref.url) else ""
            parts.append(f'<li id="ref-{ref.number}">{e(ref.label)}{link}</li>')
        parts.append("</ol>")
    if content.offline:
        parts.append(f'<p class="note">Written by the {e(OFFLINE_MODEL)}.</p>')
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _safe_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://", "mailto:"))


def _public(url: str | None) -> bool:
    """A reference link worth showing a client: a web address (not a file:// path of our knowledge base)."""
    return bool(url) and url.lower().startswith(("http://", "https://"))


# ── DOCX ────────────────────────────────────────────────────────────────────────────────────────

def render_docx(content: ProposalContent, path: Path, *, version: int | None = None) -> Path:
    """Write the proposal as a Word document: Title, Heading 1 per section, lists, links, references."""
    import docx  # python-docx: imported here, only delivery needs it

    document = docx.Document()
    document.core_properties.title = content.title
    document.core_properties.subject = f"Proposal for {content.client.name}"
    document.add_heading(content.title, level=0)
    meta = document.add_paragraph(f"Prepared for {content.client.name}" + (f" · version {version}" if version else ""))
    meta.runs[0].italic = True
    document.add_heading("Executive summary", level=1)
    _add_markdown(document, content.executive_summary.strip())
    for section in content.sections:
        document.add_heading(section.heading, level=1)
        _add_markdown(document, section.body)
    if content.references:
        document.add_heading("References", level=1)
        for ref in content.references:  # numbered by the text: [n], as the markers in the sections
            paragraph = document.add_paragraph()
            paragraph.paragraph_format.space_after = 0
            paragraph.add_run(f"[{ref.number}] {ref.label}")
            if _public(ref.url):
                paragraph.add_run(" — ")
                _add_hyperlink(paragraph, ref.url, ref.url)
    if content.offline:
        note = document.add_paragraph()
        note.add_run(f"Written by the {OFFLINE_MODEL}.").italic = True
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def _add_markdown(document, text: str) -> None:
    """Block tokens of CommonMark → docx paragraphs (headings, paragraphs, bullet/numbered lists, quotes)."""
    tokens = _MD.parse(text)
    lists: list[str] = []  # stack of "bullet"/"ordered"
    restart: list[int | None] = []  # per open list: the numbering instance that restarts an ordered list at 1
    heading_level: int | None = None
    quote = 0
    for token in tokens:
        kind = token.type
        if kind == "bullet_list_open":
            lists.append("bullet")
            restart.append(None)
        elif kind == "ordered_list_open":
            lists.append("ordered")
            restart.append(None)
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            restart.pop()
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "heading_open":
            heading_level = min(int(token.tag[1]) + 1, 9)  # a section's own headings sit below Heading 1
        elif kind == "heading_close":
            heading_level = None
        elif kind == "inline":
            if heading_level is not None:
                paragraph = document.add_heading(level=heading_level)
            elif lists:
                depth = min(len(lists), 3)
                base = "List Bullet" if lists[-1] == "bullet" else "List Number"
                paragraph = document.add_paragraph(style=base if depth == 1 else f"{base} {depth}")
                if lists[-1] == "ordered":
                    if restart[-1] is None:
                        restart[-1] = _restarted_numbering(document, paragraph.style)
                    _set_numbering(paragraph, restart[-1])
            elif quote:
                paragraph = document.add_paragraph(style="Quote")
            else:
                paragraph = document.add_paragraph()
            _add_inline(paragraph, token.children or [])
        elif kind in ("fence", "code_block"):
            paragraph = document.add_paragraph()
            run = paragraph.add_run(token.content.rstrip("\n"))
            run.font.name = "Courier New"


def _restarted_numbering(document, style) -> int | None:
    """A new numbering instance of `style`'s list that starts at 1: Word otherwise continues every
    "List Number" paragraph of the document as one list (2., 3., … in the next section)."""
    try:
        num_id = style.element.pPr.numPr.numId.val
        numbering = document.part.numbering_part.numbering_definitions._numbering
        num = numbering.add_num(numbering.num_having_numId(num_id).abstractNumId.val)
        num.add_lvlOverride(ilvl=0).add_startOverride(1)
        return num.numId
    except (AttributeError, KeyError):  # a template without list numbering: keep Word's default
        return None


def _set_numbering(paragraph, num_id: int | None) -> None:
    if num_id is not None:
        paragraph._p.get_or_add_pPr().get_or_add_numPr().get_or_add_numId().val = num_id


def _add_inline(paragraph, children) -> None:
    bold = italic = False
    link: str | None = None
    link_text: list[str] = []
    for child in children:
        kind = child.type
        if kind == "strong_open":
            bold = True
        elif kind == "strong_close":
            bold = False
        elif kind == "em_open":
            italic = True
        elif kind == "em_close":
            italic = False
        elif kind == "link_open":
            link, link_text = str(child.attrs.get("href", "")), []
        elif kind == "link_close":
            text = "".join(link_text) or link or ""
            if link and _safe_url(link):
                _add_hyperlink(paragraph, link, text)
            else:
                paragraph.add_run(text)
            link = None
        elif kind in ("softbreak", "hardbreak"):
            if link is not None:
                link_text.append(" ")
            else:
                paragraph.add_run("\n" if kind == "hardbreak" else " ")
        elif kind in ("text", "code_inline", "html_inline"):
            if link is not None:
                link_text.append(child.content)
                continue
            run = paragraph.add_run(child.content)
            run.bold, run.italic = bold or None, italic or None
            if kind == "code_inline":
                run.font.name = "Courier New"
        elif kind == "image":
            paragraph.add_run(child.content or str(child.attrs.get("src", "")))


def _add_hyperlink(paragraph, url: str, text: str) -> None:
    """A real w:hyperlink (python-docx has no public API for it)."""
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    rel_id = paragraph.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    hyperlink = OxmlElement("w:hyperlink")
    hyperlink.set(qn("r:id"), rel_id)
    run = OxmlElement("w:r")
    properties = OxmlElement("w:rPr")
    style = OxmlElement("w:rStyle")
    style.set(qn("w:val"), "Hyperlink")
    properties.append(style)
    underline = OxmlElement("w:u")
    underline.set(qn("w:val"), "single")
    properties.append(underline)
    color = OxmlElement("w:color")
    color.set(qn("w:val"), "0563C1")
    properties.append(color)
    run.append(properties)
    text_element = OxmlElement("w:t")
    text_element.text = text
    text_element.set(qn("xml:space"), "preserve")
    run.append(text_element)
    hyperlink.append(run)
    paragraph._p.append(hyperlink)
