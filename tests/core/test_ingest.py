"""Client ingestion in the core: formats, aliases, validation, rejects, idempotent upserts."""

import csv
import json

import pytest

from proposalflow.clients.ingest import apply_run, rejects_of, stage_source
from proposalflow.clients.normalise import natural_key, normalise_website
from proposalflow.clients.sources import LocalSource
from proposalflow.errors import SourceUnreadable

HEADER = ["Company Name", "Website", "E-mail", "Phone", "Industry"]
ROWS = [
    ["Acme Corp", "www.Acme.com/", "INFO@ACME.COM", "+1 555 0100", "Manufacturing"],
    ["Beta Labs", "https://beta-labs.io", "hello@beta-labs.io", "", "Biotech"],
    ["Gamma Café", "gamma.cafe", "", "+33 1 23 45 67 89", "Food"],
]


def ingest(conn, path, **kwargs):
    staged = stage_source(conn, LocalSource(path, path.name), **kwargs)
    return apply_run(conn, staged.run_id)


def write_csv(path, rows, header=HEADER, delimiter=",", encoding="utf-8"):
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def stored(conn):
    return {r[0]: r[1:] for r in conn.execute(
        "SELECT natural_key, name, website, contact_info FROM clients ORDER BY natural_key")}


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_with_any_delimiter(db, tmp_path, delimiter):
    summary = ingest(db, write_csv(tmp_path / "clients.csv", ROWS, delimiter=delimiter))
    assert (summary.read, summary.inserted, summary.rejected) == (3, 3, 0)
    clients = stored(db)
    assert clients["domain:acme.com"] == ("Acme Corp", "https://acme.com",
                                          {"email": "info@acme.com", "phone": "+1 555 0100",
                                           "Industry": "Manufacturing"})
    assert clients["domain:gamma.cafe"][0] == "Gamma Café"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "latin-1"])
def test_csv_with_bom_or_latin1(db, tmp_path, encoding):
    ingest(db, write_csv(tmp_path / "clients.csv", ROWS, encoding=encoding))
    names = {v[0] for v in stored(db).values()}
    assert "Gamma Café" in names  # decoded correctly, BOM not glued to the first header


def test_json_array_jsonl_and_xlsx(db, tmp_path):
    import openpyxl

    records = [dict(zip(["company", "url", "email"], r[:3])) for r in ROWS]
    (tmp_path / "a.json").write_text(json.dumps(records[:1]))
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in records[1:2]) + "\n")
    workbook = openpyxl.Workbook()
    workbook.active.append(["Client Name", "Site", "Mail", "Employees"])
    workbook.active.append([ROWS[2][0], ROWS[2][1], "owner@gamma.cafe", 12])
    workbook.save(tmp_path / "c.xlsx")
    for name in ("a.json", "b.jsonl", "c.xlsx"):
        assert ingest(db, tmp_path / name).inserted == 1, name
    clients = stored(db)
    assert set(clients) == {"domain:acme.com", "domain:beta-labs.io", "domain:gamma.cafe"}
    assert clients["domain:gamma.cafe"][2] == {"email": "owner@gamma.cafe", "Employees": "12"}


def test_rejects_name_the_row_column_and_reason(db, tmp_path):
    rows = ROWS + [
        ["", "orphan.com", "a@orphan.com", "", ""],          # row 5: no name
        ["Typo Inc", "typo.com", "sales(at)typo.com", "", ""],  # row 6: bad email
        ["Broken", "htp:/not a url", "", "", ""],              # row 7: bad website
        ["Acme Again", "https://acme.com", "", "", ""],        # row 8: duplicate of row 2
    ]
    staged = stage_source(db, LocalSource(write_csv(tmp_path / "c.csv", rows), "c.csv"))
    summary = apply_run(db, staged.run_id)
    assert (summary.read, summary.inserted, summary.rejected) == (7, 3, 4)
    rejects = {r["row_number"]: (r["column"], r["reason"]) for r in rejects_of(db, staged.run_id)}
    assert rejects[5] == ("name", "name is missing")
    assert rejects[6][0] == "email" and "sales(at)typo.com" in rejects[6][1]
    assert rejects[7][0] == "website" and "htp:/not a url" in rejects[7][1]
    assert rejects[8] == ("website", "duplicate of row 2 (same website domain 'acme.com')")
    raw = db.execute("SELECT raw_row, file FROM ingestion_rejects WHERE row_number = 6").fetchone()
    assert raw == ({"Company Name": "Typo Inc", "Website": "typo.com", "E-mail": "sales(at)typo.com",
                    "Phone": "", "Industry": ""}, "c.csv")
    assert stored(db).get("domain:acme.com")[0] == "Acme Corp"  # the first row stands


def test_a_nul_character_past_the_sniffed_head_is_a_reject_naming_the_row_and_column(db, tmp_path):
    filler = [[f"Filler {i}", f"filler{i}.com", "", "", "Retail"] for i in range(2000)]  # > 64 KB before the bad row
    rows = filler + [["Nul Ltd", "nul.com", "", "", "Re\x00tail"]] + ROWS
    staged = stage_source(db, LocalSource(write_csv(tmp_path / "c.csv", rows), "c.csv"))
    summary = apply_run(db, staged.run_id)
    assert (summary.read, summary.inserted, summary.rejected) == (2004, 2003, 1)
    [reject] = rejects_of(db, staged.run_id)
    assert reject["row_number"] == 2002 and reject["reason"] == "row 2002 has a NUL character (\\u0000) in column 'Industry'"
    assert reject["raw_row"]["Industry"] == "Re\\u0000tail"  # kept, with the NUL written out


def test_rerun_changes_nothing_and_a_changed_row_is_updated(db, tmp_path):
    path = write_csv(tmp_path / "c.csv", ROWS)
    first = ingest(db, path)
    before = db.execute("SELECT id, updated_at FROM clients ORDER BY id").fetchall()
    again = ingest(db, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert db.execute("SELECT id, updated_at FROM clients ORDER BY id").fetchall() == before
    changed = [list(r) for r in ROWS]
    changed[1][3] = "+44 20 7946 0000"
    summary = ingest(db, write_csv(tmp_path / "c2.csv", changed))
    assert (first.inserted, summary.inserted, summary.updated, summary.unchanged) == (3, 0, 1, 2)
    assert stored(db)["domain:beta-labs.io"][2]["phone"] == "+44 20 7946 0000"


def test_batches_smaller_than_the_file_give_the_same_result(db, tmp_path):
    rows = [[f"Company {i}", f"company{i}.com", f"x@company{i}.com", "", ""] for i in range(450)]
    rows.append(["Company 3 again", "company3.com", "", "", ""])  # duplicate across batches
    staged = stage_source(db, LocalSource(write_csv(tmp_path / "c.csv", rows), "c.csv"), batch_rows=100)
    summary = apply_run(db, staged.run_id)
    assert (summary.read, summary.inserted, summary.rejected) == (451, 450, 1)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, "binary"),
    (b"website,email\nacme.com,a@acme.com\n", "no name column"),
])
def test_an_unreadable_file_fails_naming_the_file_and_writes_nothing(db, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(SourceUnreadable, match=message) as error:
        stage_source(db, LocalSource(path, "bad.csv"))
    assert "bad.csv" in str(error.value)
    for table in ("clients", "ingestion_runs", "ingestion_rejects", "client_staging"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_a_broken_json_array_writes_nothing(db, tmp_path):
    path = tmp_path / "c.json"
    path.write_text('[{"name": "Acme"}, {"name": ')
    with pytest.raises(SourceUnreadable, match="c.json: not valid JSON"):
        stage_source(db, LocalSource(path, "c.json"))
    assert db.execute("SELECT count(*) FROM ingestion_runs").fetchone()[0] == 0


def test_a_bad_jsonl_line_is_a_reject_not_a_failure(db, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"name": "Acme", "website": "acme.com"}\n{oops\n{"name": "Beta"}\n')
    staged = stage_source(db, LocalSource(path, "c.jsonl"))
    assert (staged.staged, staged.rejected) == (2, 1)
    reject = rejects_of(db, staged.run_id)[0]
    assert reject["row_number"] == 2 and "not valid JSON" in reject["reason"]


def test_natural_key_rule():
    assert normalise_website("WWW.Example.COM/") == ("https://example.com", "example.com")
    assert normalise_website("http://shop.example.com/en") == ("http://shop.example.com/en", "shop.example.com")
    assert natural_key("Acme", "acme.com", "CRM-1") == "domain:acme.com"
    assert natural_key("Acme", None, "CRM-1") == "ext:CRM-1"
    assert natural_key("  Acme,  Inc. ", None, None) == "name:acme inc"
