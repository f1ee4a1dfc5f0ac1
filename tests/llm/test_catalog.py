from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kdedge.errors import DataError
from kdedge.llm.catalog import Catalog, normalize

SAMPLES = Path(__file__).parents[2] / "kdedge" / "samples" / "manga_llm"
GOOD = {
    "id": "nana",
    "title": "Nana",
    "author": "Ai Yazawa",
    "volumes": 21,
    "formats": ["paperback"],
    "availability": {"paperback": "in_stock"},
    "price_usd": {"paperback": 9.99},
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(SAMPLES / "catalog.jsonl")


def _prompts() -> list[dict]:
    return [
        json.loads(line)
        for split in ("train", "validation", "test")
        for line in (SAMPLES / f"prompts_{split}.jsonl").read_text().splitlines()
    ]


def test_sample_catalog_loads_with_all_facts(catalog: Catalog) -> None:
    assert len(catalog) == 75
    nana = catalog["nana"]
    assert nana.formats == ("paperback",) and nana.volumes == 21
    assert nana.availability == {"paperback": "in_stock"} and nana.price_usd == {"paperback": 9.99}
    line = nana.evidence_line()
    assert line.startswith("[nana] Nana by Ai Yazawa; 21 volumes;")
    assert "paperback: in stock, $9.99" in line
    assert line.endswith("not offered: hardcover, digital, box set")
    assert "\n" not in line
    frieren = catalog["frieren"]
    assert "Frieren" in frieren.names  # the part before the colon is a name too
    assert Catalog.load(SAMPLES / "catalog.jsonl").records == catalog.records


def test_normalize_folds_case_accents_and_punctuation() -> None:
    assert normalize("Pokémon Adventures") == "pokemon adventures"
    assert normalize("Kuroko's Basketball") == "kurokos basketball"
    assert normalize("Yotsuba&!") == "yotsuba and"
    assert normalize("  Dr. STONE ") == "dr stone"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Is Nana hardcover available?", "nana"),
        ("is nana available", "nana"),
        ("frieren vol 3 in stock?", "frieren"),  # partial title
        ("Do you have JJK?", "jujutsu-kaisen"),  # alias
        ("pokemon adventures price", "pokemon-adventures"),  # accents
        ("DR STONE!!", "dr-stone"),  # case and punctuation
        ("Fullmetal Alchemy, how much?", "fma"),  # a spelling slip
        ("haikyuu box set", "haikyu"),
        ("Dragon Ball Super volume 2", "dragon-ball-super"),  # the longer name wins the tie
    ],
)
def test_retrieve_matches_titles_robustly(catalog: Catalog, text: str, expected: str) -> None:
    found = catalog.retrieve(text)
    assert found and found[0].id == expected, [r.id for r in found]


@pytest.mark.parametrize(
    "text",
    [
        "What's the weather like?",
        "Can I get a refund for my order?",
        "Do you have Chainsaw Man?",
        "",
    ],
)
def test_retrieve_gives_no_evidence_for_unrelated_questions(catalog: Catalog, text: str) -> None:
    assert catalog.retrieve(text) == []


def test_retrieve_finds_an_authors_titles(catalog: Catalog) -> None:
    found = catalog.retrieve("anything by Naoki Urasawa?", k=3)
    assert {r.id for r in found} == {"monster", "20th-century-boys", "pluto"}


def test_retrieve_on_the_sample_prompts(catalog: Catalog) -> None:
    """Every catalog question finds its record first; no unknown title finds anything."""
    prompts = _prompts()
    about = [p for p in prompts if p["kind"] == "catalog"]
    unknown = [p for p in prompts if p["kind"] == "unknown_title"]
    assert len(about) > 300 and len(unknown) > 60
    misses = [
        p["question"]
        for p in about
        if catalog.retrieve(p["question"])[:1] != [catalog[p["about"][0]]]
    ]
    assert not misses
    leaks = {p["question"]: [r.id for r in catalog.retrieve(p["question"])] for p in unknown}
    assert not {q: ids for q, ids in leaks.items() if ids}


def test_find_and_resolve_evidence(catalog: Catalog) -> None:
    assert catalog.find("NANA").id == "nana"
    assert catalog.find("Delicious in Dungeon").id == "dungeon-meshi"
    assert catalog.find("frieren").id == "frieren"
    assert catalog.find("Chainsaw Man") is None
    nana, pluto = catalog["nana"], catalog["pluto"]
    lines = [nana.evidence_line(), "- " + pluto.evidence_line()]
    assert catalog.resolve_evidence(lines) == [nana, pluto]
    assert catalog.resolve_evidence(["nana", pluto, "nana"]) == [nana, pluto]
    assert catalog.resolve_evidence(["Monster by Naoki Urasawa"]) == [catalog["monster"]]
    assert catalog.resolve_evidence(["no such line"]) == []


def _write(path: Path, rows: list) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rows", "line", "field", "words"),
    [
        ([GOOD, "{not json"], 2, None, "not valid JSON"),
        ([GOOD, [1, 2]], 2, None, "not an object"),
        ([{**GOOD, "title": ""}], 1, "title", "non-empty string"),
        ([{**GOOD, "volumes": 0}], 1, "volumes", "at least 1"),
        ([{**GOOD, "volumes": "21"}], 1, "volumes", "whole number"),
        ([{**GOOD, "formats": ["audiobook"]}], 1, "formats", "unknown format 'audiobook'"),
        ([{**GOOD, "formats": ["paperback", "digital"]}], 1, "availability", "exactly the listed"),
        ([{**GOOD, "availability": {"paperback": "maybe"}}], 1, "availability", "'maybe'"),
        ([{**GOOD, "price_usd": {"paperback": -1}}], 1, "price_usd", "positive number"),
        ([{**GOOD, "id": "a b"}], 1, "id", "not a valid id"),
        ([{**GOOD, "isbn": "x"}], 1, None, "unknown field(s) isbn"),
        ([GOOD, {**GOOD, "title": "Nana 2"}], 2, "id", "duplicate id 'nana' (first on line 1)"),
        ([GOOD, {**GOOD, "id": "nana2", "title": "NANA!"}], 2, "title", "repeats the title"),
    ],
)
def test_bad_catalog_lines_name_file_line_and_field(
    tmp_path: Path, rows: list, line: int, field: str | None, words: str
) -> None:
    path = _write(tmp_path / "catalog.jsonl", rows)
    with pytest.raises(DataError) as info:
        Catalog.load(path)
    err = info.value
    assert err.path == str(path) and err.line == line and err.field == field
    assert words in str(err) and f"catalog.jsonl:{line}" in str(err)
    assert "\n" not in str(err)


def test_missing_and_empty_catalogs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="catalog file not found"):
        Catalog.load(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="no records"):
        Catalog.load(_write(tmp_path / "empty.jsonl", []))


def test_sample_files_are_the_scripts_output(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SAMPLES / "make_data.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in (
        "catalog.jsonl",
        "prompts_train.jsonl",
        "prompts_validation.jsonl",
        "prompts_test.jsonl",
    ):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name
