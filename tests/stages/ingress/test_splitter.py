"""The CSV splitter: parts bounded in bytes, each led by the header, rows never cut."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest

from stages.ingress import splitter
from stages.ingress.splitter import CsvSplitter, split_csv

HEADER = "id,name,note\n"


def table(rows: int, seed: int = 1) -> str:
    """A CSV whose rows differ in length and hold multi-byte characters, commas and
    newlines inside quotes."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "note"])
    for i in range(rows):
        note = rng.choice(["", "plain", "ünïcödé €", 'say "hi"', "two\nlines", "a,b"])
        writer.writerow([i, "x" * rng.randrange(0, 30), note])
    return out.getvalue()


def rows_of(part: Path, header: bytes) -> bytes:
    data = part.read_bytes()
    assert data.startswith(header), f"{part.name} does not start with the header"
    return data[len(header) :]


def check_parts(parts: list[Path], text: str, max_bytes: int) -> None:
    """Every part within the bound, led by the header; the rows, joined, are the input's."""
    whole = text.encode("utf-8")
    header = whole[: whole.index(b"\n") + 1]
    assert all(p.stat().st_size <= max_bytes for p in parts)
    assert header + b"".join(rows_of(p, header) for p in parts) == whole
    for p in parts:  # no row cut: each part parses on its own into whole records
        records = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"), newline="")))
        assert records[0] == ["id", "name", "note"] and all(len(r) == 3 for r in records)


def test_parts_stay_within_the_byte_bound_and_join_back_to_the_input(tmp_path: Path) -> None:
    text = table(400)
    with CsvSplitter(tmp_path / "t", max_bytes=300) as out:
        out.write(text)
    parts = out.parts
    assert len(parts) > 10
    assert [p.name for p in parts] == [f"t_split{i}.csv" for i in range(len(parts))]
    check_parts(parts, text, 300)


def test_bytes_are_counted_not_characters(tmp_path: Path) -> None:
    row = "1,€€€€\n"  # 7 characters, 15 bytes
    with CsvSplitter(tmp_path / "t", max_bytes=len("h\n") + 15) as out:
        out.write("h\n" + row + row)
    assert [p.read_text(encoding="utf-8") for p in out.parts] == ["h\n" + row] * 2


def test_a_part_is_filled_up_to_the_bound_exactly(tmp_path: Path) -> None:
    with CsvSplitter(tmp_path / "t", max_bytes=9) as out:  # header 3 bytes, rows 3 bytes
        out.write("h1\na1\nb1\nc1\n")
    assert [p.read_bytes() for p in out.parts] == [b"h1\na1\nb1\n", b"h1\nc1\n"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_writes_of_any_pieces_give_the_same_parts_as_one_write(tmp_path: Path, seed: int) -> None:
    text = table(200, seed)
    with CsvSplitter(tmp_path / "once", max_bytes=250) as once:
        once.write(text)
    rng = random.Random(seed)
    with CsvSplitter(tmp_path / "pieces", max_bytes=250) as pieces:
        at = 0
        while at < len(text):
            step = rng.choice([1, 2, 5, 17, 80, 400])
            pieces.write(text[at : at + step])
            at += step
    assert [p.read_bytes() for p in pieces.parts] == [p.read_bytes() for p in once.parts]


def test_a_newline_inside_quotes_does_not_end_a_row(tmp_path: Path) -> None:
    row = '1,"two\nlines, and ""quotes"""\n'
    # room for a row and the first line of the next (7 bytes), which must not be cut off
    with CsvSplitter(tmp_path / "t", max_bytes=len(HEADER) + len(row) + 7) as out:
        out.write(HEADER + row + row)
    assert [p.read_text(encoding="utf-8") for p in out.parts] == [HEADER + row] * 2


def test_a_row_too_large_for_any_part_gets_one_of_its_own(tmp_path: Path) -> None:
    big = "2," + "y" * 50 + "\n"
    with CsvSplitter(tmp_path / "t", max_bytes=20) as out:
        out.write("h\n1,a\n" + big + "3,c\n")
    assert [p.read_text() for p in out.parts] == ["h\n1,a\n", "h\n" + big, "h\n3,c\n"]


def test_a_single_part_is_named_after_the_stem(tmp_path: Path) -> None:
    with CsvSplitter(tmp_path / "events", max_bytes=1000) as out:
        out.write(HEADER + "1,a,b\n")
    assert out.parts == [tmp_path / "events.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv"]
    assert out.parts[0].read_text() == HEADER + "1,a,b\n"


def test_no_part_holds_the_header_alone(tmp_path: Path) -> None:
    with CsvSplitter(tmp_path / "t", max_bytes=9) as out:
        out.write("h1\na1\nb1\n")  # the part is exactly full when the input ends
    assert [p.read_bytes() for p in out.parts] == [b"h1\na1\nb1\n"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_a_header_without_rows_is_one_part_and_nothing_written_is_none(tmp_path: Path) -> None:
    with CsvSplitter(tmp_path / "only", max_bytes=100) as only:
        only.write("a,b")  # no newline at the end either
    assert [p.read_text() for p in only.parts] == ["a,b"]
    with CsvSplitter(tmp_path / "nothing", max_bytes=100) as nothing:
        pass
    assert nothing.parts == []
    assert not (tmp_path / "nothing.csv").exists()


def test_a_last_row_without_a_newline_is_kept(tmp_path: Path) -> None:
    with CsvSplitter(tmp_path / "t", max_bytes=8) as out:
        out.write("h\n1,a\n2,b")
    assert [p.read_text() for p in out.parts] == ["h\n1,a\n", "h\n2,b"]


def test_an_exception_in_the_block_removes_the_parts(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), CsvSplitter(tmp_path / "t", max_bytes=8) as out:
        out.write("h\n1,a\n2,b\n3,c\n")
        raise RuntimeError("the query failed")
    assert out.parts == [] and list(tmp_path.iterdir()) == []


def test_writing_after_close_is_refused(tmp_path: Path) -> None:
    out = CsvSplitter(tmp_path / "t", max_bytes=8)
    out.close()
    assert out.closed
    with pytest.raises(ValueError, match="closed"):
        out.write("h\n")


def test_csv_writer_writes_into_it(tmp_path: Path) -> None:
    with CsvSplitter(tmp_path / "t", max_bytes=40) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "name", "note"])
        writer.writerows([i, "n" * i, "z"] for i in range(20))
    assert len(out.parts) > 3
    assert all(p.read_text().startswith("id,name,note\n") for p in out.parts)


def test_split_csv_leaves_a_file_that_fits_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(table(5), encoding="utf-8")
    assert split_csv(path, path.stat().st_size) == [path]
    assert list(tmp_path.iterdir()) == [path]


def test_split_csv_streams_a_file_into_parts_and_keeps_the_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(splitter, "_CHUNK", 7)  # rows and quotes cross reads and scans
    text = table(300)
    path = tmp_path / "events.csv"
    path.write_bytes(text.encode("utf-8"))
    parts = split_csv(path, 200)
    assert [p.name for p in parts] == [f"events_split{i}.csv" for i in range(len(parts))]
    check_parts(parts, text, 200)
    assert path.read_bytes() == text.encode("utf-8")


def test_max_bytes_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CsvSplitter(tmp_path / "t", 0)
