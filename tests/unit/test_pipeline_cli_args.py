"""The `stackserve pipeline` command names and options exactly as issue 27 and the README spell
them: users' scripts call them, so a rename must fail here first."""

from __future__ import annotations

import pytest

from server.cli.main import build_parser

LINES = [
    ("pipeline init --data e.csv --entity device --timestamp ts --label anomaly --tenant t --pii email phone",
     {"what": "init", "data": "e.csv", "entity": "device", "timestamp": "ts", "label": "anomaly", "tenant": "t",
      "pii": ["email", "phone"]}),
    ("pipeline ingest a.csv b.jsonl c.parquet", {"what": "ingest", "files": ["a.csv", "b.jsonl", "c.parquet"]}),
    ("pipeline run", {"what": "run"}),
    ("pipeline backfill --from 2026-01-01 --to 2026-01-02", {"what": "backfill", "start": "2026-01-01",
                                                             "end": "2026-01-02"}),
    ("pipeline status --json", {"what": "status", "json": True}),
    ("pipeline run --data-dir /d --spec /s.yaml", {"what": "run", "data_dir": "/d", "spec": "/s.yaml"}),
    ("--data-dir /d pipeline status", {"what": "status", "data_dir": "/d"}),
]


@pytest.mark.parametrize(("line", "want"), LINES, ids=[line for line, _ in LINES])
def test_documented_command_lines_parse(line, want):
    args = build_parser().parse_args(line.split())
    assert args.command == "pipeline"
    for key, value in want.items():
        assert getattr(args, key) == value, key


def test_required_options_are_required(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pipeline", "init", "--data", "e.csv", "--entity", "device"])
    assert "--timestamp" in capsys.readouterr().err
