"""Reading knowledge files and cutting them into chunks."""

from pathlib import Path

import pytest

from proposalflow.errors import SourceUnreadable
from proposalflow.knowledge.chunking import ChunkSettings, chunk_document, sections
from proposalflow.knowledge.documents import file_source, folder_sources, normalise, read_source


def test_chunks_keep_their_heading_path_and_respect_the_size():
    text = "# Services\n\nIntro.\n\n## SEO\n\n" + "Keyword research and audits. " * 120 + "\n\n## Ads\n\nGoogle Ads."
    chunks = chunk_document("Brightpath services", text, ChunkSettings(size=400, overlap=60))
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text) <= 400 for c in chunks)
    seo = [c for c in chunks if c.heading == "Brightpath services › Services › SEO"]
    assert len(seo) > 3 and all(c.text.startswith("Brightpath services › Services › SEO\n\n") for c in seo)
    assert chunks[-1].heading.endswith("› Ads") and chunks[-1].text.endswith("Google Ads.")
    # overlap: consecutive pieces of one section share text
    first, second = seo[0].text.split("\n\n", 1)[1], seo[1].text.split("\n\n", 1)[1]
    assert first[-40:].split()[-1] in second[:120]


def test_a_heading_inside_a_code_fence_is_not_a_heading():
    parts = sections("# Real\n\n```\n# not a heading\n```\n\n## Sub\n\nbody")
    assert [path for path, _ in parts] == [["Real"], ["Real", "Sub"]]
    assert "# not a heading" in parts[0][1]


def test_title_equal_to_the_first_heading_is_not_repeated():
    chunks = chunk_document("Rates", "# Rates\n\n$150 an hour.")
    assert chunks[0].heading == "Rates" and chunks[0].text == "Rates\n\n$150 an hour."


def test_normalise_line_ends_spaces_and_blank_lines():
    assert normalise("a\r\nb  \r\n\r\n\r\n\r\nc\x00\u00a0d") == "a\nb\n\nc d"


def test_category_explicit_then_front_matter_then_folder(tmp_path):
    (tmp_path / "pricing").mkdir()
    (tmp_path / "pricing" / "a.md").write_text("# A\n\ntext")
    (tmp_path / "pricing" / "b.md").write_text("---\ncategory: offers\ntitle: Bee\nowner: dana\n"
                                               "reviewed: 2025-03-01\ntags: [a, 2025-01-02]\n---\ntext b")
    (tmp_path / "top.txt").write_text("plain")
    (tmp_path / ".hidden.md").write_text("secret")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    sources = list(folder_sources(tmp_path))
    assert [Path(s.path).name for s in sources] == ["a.md", "b.md", "top.txt"]
    docs = {Path(s.path).name: read_source(s) for s in sources}
    assert (docs["a.md"].category, docs["a.md"].title) == ("pricing", "A")
    assert (docs["b.md"].category, docs["b.md"].title, docs["b.md"].text) == ("offers", "Bee", "text b")
    assert docs["b.md"].metadata["owner"] == "dana" and docs["b.md"].metadata["tags"] == ["a", "2025-01-02"]
    assert docs["b.md"].metadata["reviewed"] == "2025-03-01"
    assert docs["top.txt"].category is None and docs["top.txt"].title == "Top"
    forced = [read_source(s) for s in folder_sources(tmp_path, category="forced")]
    assert {d.category for d in forced} == {"forced"}


def test_docx_headings_become_markdown_headings(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Retainers", level=1)
    document.add_paragraph("Local SEO costs $1,800 per month.")
    document.add_heading("Ads", level=2)
    document.add_paragraph("15% of spend.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Analyst", "$125"
    path = tmp_path / "retainers.docx"
    document.save(path)
    doc = read_source(file_source(path))
    assert doc.text == "# Retainers\n\nLocal SEO costs $1,800 per month.\n\n## Ads\n\n15% of spend.\n\nAnalyst | $125"
    assert doc.title == "Retainers"


def test_pdf_text_is_extracted(tmp_path):
    path = tmp_path / "rates.pdf"
    path.write_bytes(minimal_pdf("Senior designer rate is 150 dollars per hour"))
    doc = read_source(file_source(path, "pricing"))
    assert "Senior designer rate is 150 dollars per hour" in doc.text
    assert doc.metadata["pages"] == 1 and doc.category == "pricing"


def test_html_main_text_without_navigation(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><title>Case study</title></head><body><nav><a href='/'>Home menu</a></nav>"
                    "<article><h1>Case study</h1><p>" + "Bookings rose by 64 percent in nine months. " * 5 +
                    "</p></article></body></html>")
    doc = read_source(file_source(path))
    assert doc.title == "Case study" and "Bookings rose by 64 percent" in doc.text and "Home menu" not in doc.text


@pytest.mark.parametrize("name, data, reason", [
    ("broken.pdf", b"%PDF-1.4 garbage", "not a readable pdf file"),
    ("broken.docx", b"PK\x03\x04 not a zip", "not a readable docx file"),
    ("empty.md", b"   \n", "no text in the file"),
    ("binary.txt", b"\x00\x01\x02" * 100, "a binary file"),
])
def test_unreadable_files_are_refused_naming_the_file(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SourceUnreadable) as caught:
        read_source(file_source(path))
    assert name in str(caught.value) and reason in str(caught.value)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, cross-reference offsets computed."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
