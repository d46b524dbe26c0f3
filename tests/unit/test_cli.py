"""The `stackserve` command line: global options anywhere, configured client address, version, log level."""

from __future__ import annotations

import logging

import pytest

from server import cli
from server.cli import anomaly as anomaly_commands
from server.cli import common
from server.cli import llm as llm_commands
from server.cli import serve as serve_commands


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("STACKSERVE_CONFIG", raising=False)
    for name in ("HOST", "PORT"):
        monkeypatch.delenv(f"STACKSERVE__GATEWAY__{name}", raising=False)


@pytest.fixture
def ran(monkeypatch):
    """Replace the client commands by one that records the parsed arguments."""
    seen = {}

    def record(args):
        seen["args"] = args
        return 0

    for module, name in ((serve_commands, "cmd_health"), (anomaly_commands, "cmd_score"),
                         (llm_commands, "cmd_generate"), (llm_commands, "cmd_chat"),
                         (anomaly_commands, "cmd_rollout_status"), (anomaly_commands, "cmd_models_list")):
        monkeypatch.setattr(module, name, record)
    return seen


@pytest.mark.parametrize(
    "argv",
    [
        ["--data-dir", "D", "--config", "C", "train", "anomaly"],
        ["train", "anomaly", "--data-dir", "D", "--config", "C"],
        ["train", "--data-dir", "D", "anomaly", "--config", "C"],
        ["--config", "C", "train", "anomaly", "--data-dir", "D"],
    ],
)
def test_global_options_before_or_after_the_subcommand(argv):
    args = cli.build_parser().parse_args(argv)
    assert (args.data_dir, args.config, args.func) == ("D", "C", anomaly_commands.cmd_train_anomaly)


def test_global_options_default_to_none_and_the_later_one_wins():
    args = cli.build_parser().parse_args(["models", "list"])
    assert (args.config, args.data_dir, args.log_level) == (None, None, None)
    args = cli.build_parser().parse_args(["--data-dir", "A", "gate", "--data-dir", "B", "--train"])
    assert args.data_dir == "B" and args.train


@pytest.mark.parametrize(
    "argv",
    [
        ["health"],
        ["score", "x.csv"],
        ["generate", "hi"],
        ["chat", "hi"],
        ["rollout", "status"],
    ],
)
def test_client_commands_default_to_the_configured_address(argv, ran, monkeypatch, tmp_path):
    assert cli.main(argv) == 0
    assert ran["args"].address == "127.0.0.1:50051"  # the configuration's defaults

    monkeypatch.setenv("STACKSERVE__GATEWAY__PORT", "6123")
    assert cli.main(argv) == 0
    assert ran["args"].address == "127.0.0.1:6123"

    cfg = tmp_path / "c.yaml"
    cfg.write_text("gateway:\n  host: 0.0.0.0\n  port: 7000\n")
    monkeypatch.delenv("STACKSERVE__GATEWAY__PORT")
    assert cli.main([*argv, "--config", str(cfg)]) == 0
    assert ran["args"].address == "127.0.0.1:7000"  # a wildcard bind is reached on this host

    assert cli.main([*argv, "--address", "10.0.0.1:9"]) == 0
    assert ran["args"].address == "10.0.0.1:9"


def test_configured_ipv6_host_is_bracketed(ran, monkeypatch):
    monkeypatch.setenv("STACKSERVE__GATEWAY__HOST", "::")
    cli.main(["health"])
    assert ran["args"].address == "[::1]:50051"


def test_configured_free_port_needs_an_explicit_address(ran, monkeypatch):
    monkeypatch.setenv("STACKSERVE__GATEWAY__PORT", "0")
    with pytest.raises(SystemExit, match="--address"):
        cli.main(["health"])


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"stackserve {common.version_string()}"


@pytest.fixture
def restore_logging():
    root, ours = logging.getLogger(), logging.getLogger("stackserve")
    saved = root.level, root.handlers[:], ours.level, ours.handlers[:], ours.propagate
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    ours.setLevel(saved[2])
    ours.handlers[:] = saved[3]
    ours.propagate = saved[4]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("argv", [["--log-level", "debug", "health"], ["health", "--log-level", "DEBUG"]])
def test_log_level_sets_logging(argv, ran):
    assert cli.main(argv) == 0
    assert logging.getLogger("stackserve").level == logging.DEBUG
    assert logging.getLogger().level == logging.DEBUG
    assert common.serving_log_level() == "DEBUG"


def test_log_level_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--log-level", "loud", "health"])
    assert "invalid choice" in capsys.readouterr().err


def test_health_against_nothing_fails_fast(capsys):
    assert cli.main(["health", "--address", "127.0.0.1:1", "--timeout", "2"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_keys_new_prints_config_that_admits_the_key_with_its_limits(capsys):
    import yaml

    from server.config import load_settings
    from server.security.api_keys import key_digest

    assert cli.main(["keys", "new", "--tenant", "acme", "--services", "llm", "chat", "--requests-per-s", "5",
                     "--tokens-per-minute", "20000"]) == 0
    first, _, config = capsys.readouterr().out.partition("\n")
    key = first.rsplit(" ", 1)[1]
    settings = load_settings(None, security=yaml.safe_load(config)["security"])
    (tenant,) = settings.security.tenants
    assert (tenant.name, tenant.services, tenant.requests_per_s, tenant.tokens_per_minute) == (
        "acme", ["llm", "chat"], 5.0, 20000)
    assert tenant.key_sha256 == [key_digest(key)]
