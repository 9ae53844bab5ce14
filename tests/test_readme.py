"""The README's configuration reference is generated from the dataclasses and must not drift from them."""

from pathlib import Path

from textdistill.config import reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_config_reference_matches_the_code():
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- config-reference:start -->\n", "\n<!-- config-reference:end -->"
    assert start in text and end in text, "README lost its config-reference markers"
    documented = text.split(start, 1)[1].split(end, 1)[0]
    assert documented == reference_markdown(), "run `textdistill config reference` and paste it into the README"


def test_every_config_key_has_a_meaning():
    rows = reference_markdown().splitlines()[2:]
    assert rows
    undocumented = [row.split(" | ")[0] for row in rows if row.endswith("|  |")]
    assert not undocumented, f"config keys without a comment: {undocumented}"
