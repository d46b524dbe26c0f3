"""A small corpus in every supported format, with PII to redact and a duplicate to skip."""

from __future__ import annotations

from pathlib import Path

NOTES = "Plain notes. The kettle whistles at one hundred degrees."


def write_small_corpus(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "garden.md").write_text(
        "# Gardening\n\nTomatoes need full sun and deep watering. Prune the suckers weekly.\n\n"
        "## Pests\n\nAphids gather under leaves. Spray them with soapy water. Contact grower@farm.example "
        "or call +44 20 7183 8750 for help.\n")
    (root / "boats.rst").write_text(
        "Sailing\n=======\n\nA sloop has one mast. Reef the mainsail when the wind rises above twenty knots.\n\n"
        "Knots\n-----\n\nThe bowline makes a fixed loop. The cleat hitch secures a line to a cleat.\n")
    (root / "bread.html").write_text(
        "<html><head><style>p{}</style></head><body><h1>Baking</h1><p>Sourdough needs a starter fed daily.</p>"
        "<h2>Payment</h2><p>Card on file: 4111 1111 1111 1111. IBAN DE89 3704 0044 0532 0130 00.</p>"
        "<script>var x = 1;</script></body></html>")
    (root / "notes.txt").write_text(NOTES)
    (root / "copy-of-notes.txt").write_text(NOTES)  # same content, another file: indexed once
