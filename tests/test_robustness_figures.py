"""The bundled models against the robustness table that README.md quotes.

Marked slow (the whole table on 2,000 digits takes a few minutes on 2 cores): `pytest -m slow`.
The table is read from the README itself, so the figures there cannot drift from the models.
"""

import re
from pathlib import Path

import pytest

from scratchnet.mnist import robustness
from scratchnet.mnist.models import load_pretrained

README = Path(__file__).resolve().parents[1] / "README.md"
DIGITS = 2000  # the README's table is on the first 2,000 test digits
# Issue 17's targets on the table's harder settings (3x strokes, blur 1.5, 8x8), in %.
HARD = {("stroke", 3.0), ("blur", 1.5), ("lowres", 8.0)}
TARGETS = {"cnn": 97.0, "linear": 75.0}


def quoted_rows() -> list[tuple[str, float, float, float]]:
    """(transform, strength, cnn %, linear %) of each row of the README's "after" columns.

    A row reads `| transform | strength | cnn before | cnn after | linear before | linear after |`
    with the strength's number first (`3x width`, `8 px`, `none`: 0) and the "after" figures
    possibly in bold.
    """
    section = README.read_text().split("\n## Robustness", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[2].endswith("%"):
            continue
        number = re.match(r"[0-9.]+", cells[1])
        strength = float(number.group()) if number else 0.0
        rows.append((cells[0], strength, float(cells[3][:-1]), float(cells[5][:-1])))
    return rows


@pytest.mark.slow
def test_bundled_models_hold_the_figures_in_the_readme(mnist):
    quoted = quoted_rows()
    assert len(quoted) == sum(len(t.strengths) for t in robustness.TRANSFORMS)
    models = {name: load_pretrained(name) for name in ("cnn", "linear")}
    rows = robustness.score(models, mnist.test_images[:DIGITS], mnist.test_labels[:DIGITS])
    for row, (transform, strength, cnn, linear) in zip(rows, quoted, strict=True):
        assert (row["transform"], row["strength"]) == (transform, strength)
        # 0.1 points is two digits of 2,000: room for the engine's last-bit changes only.
        assert 100 * row["cnn"] == pytest.approx(cnn, abs=0.1), row
        assert 100 * row["linear"] == pytest.approx(linear, abs=0.1), row


def test_the_readme_quotes_every_row():
    quoted = quoted_rows()
    expected = [(t.name, float(s)) for t in robustness.TRANSFORMS for s in t.strengths]
    assert [(t, s) for t, s, _, _ in quoted] == expected


@pytest.mark.parametrize(
    "name",
    [
        "linear",
        pytest.param(
            "cnn",
            marks=pytest.mark.xfail(
                strict=True,
                reason="the bundled CNN reads 8x8 at 96.70%, under 97% (README: Robustness)",
            ),
        ),
    ],
)
def test_the_quoted_figures_meet_the_targets(name):
    column = 2 if name == "cnn" else 3
    hard = [row for row in quoted_rows() if row[:2] in HARD]
    assert len(hard) == len(HARD)
    assert all(row[column] >= TARGETS[name] for row in hard), hard
