"""The needle-service command line: options, environment hand-off, openapi --check."""
import pytest

from service import cli
from service.api.openapi import render_openapi


def test_serve_options_become_settings_and_reach_child_processes(monkeypatch, tmp_path):
    monkeypatch.setenv("NEEDLE_PORT", "9000")
    monkeypatch.setenv("NEEDLE_MAX_EPOCHS", "7")
    for name in ("NEEDLE_DATA_DIR", "NEEDLE_WORKERS", "NEEDLE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    args = cli.build_parser().parse_args(["serve", "--data-dir", str(tmp_path), "--workers", "0"])
    settings = cli.settings_from(args, cli.SERVE_OPTIONS)
    assert (settings.data_dir, settings.workers, settings.port) == (tmp_path, 0, 9000)
    assert settings.max_epochs == 7 and settings.database_url is None
    import os
    assert os.environ["NEEDLE_DATA_DIR"] == str(tmp_path)  # inherited by worker processes


def test_worker_accepts_store_options_and_parent_pid():
    args = cli.build_parser().parse_args(["worker", "--database-url", "postgresql://x/y",
                                          "--parent-pid", "42"])
    assert (args.database_url, args.parent_pid) == ("postgresql://x/y", 42)


def test_openapi_writes_then_checks(tmp_path, capsys):
    target = tmp_path / "openapi.json"
    assert cli.main(["openapi", "--check", "--output", str(target)]) == 1
    assert "missing" in capsys.readouterr().err
    assert cli.main(["openapi", "--output", str(target)]) == 0
    assert target.read_text() == render_openapi()
    assert cli.main(["openapi", "--check", "--output", str(target)]) == 0
    target.write_text("{}")
    assert cli.main(["openapi", "--check", "--output", str(target)]) == 1
    assert "stale" in capsys.readouterr().err


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit):
        cli.main(["train"])


def test_keys_create_prints_the_key_alone_on_the_last_line_and_stores_only_its_hash(tmp_path, capsys):
    from service.jobs.keys import hash_token
    from service.jobs.sqlite import SQLiteStore
    data = ["--data-dir", str(tmp_path)]
    assert cli.main(["keys", "create", "--name", "team-a", "--tenant", "a", "--max-active-jobs", "3",
                     "--rate-limit", "2.5", *data]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("nsk_") and " " not in token
    store = SQLiteStore(tmp_path / "jobs.db")
    key = store.find_key(hash_token(token))
    assert (key.name, key.tenant, key.max_active_jobs, key.rate_limit, key.max_priority) == \
        ("team-a", "a", 3, 2.5, 0)
    assert token.encode() not in (tmp_path / "jobs.db").read_bytes()
    assert cli.main(["keys", "create", "--name", "team-a", *data]) == 1  # names are unique
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["keys", "revoke", "team-a", *data]) == 0
    assert cli.main(["keys", "list", *data]) == 0
    assert "revoked" in capsys.readouterr().out
    assert not store.find_key(hash_token(token)).active
    store.close()


def test_keys_create_validates_names_and_quotas(capsys):
    for bad in (["--name", "has space"], ["--name", "x", "--max-active-jobs", "-1"],
                ["--name", "x", "--rate-limit", "0"]):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["keys", "create", *bad])


def test_serve_refuses_a_short_admin_key_without_echoing_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NEEDLE_ADMIN_KEY", "guessable")
    assert cli.main(["serve", "--data-dir", str(tmp_path), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "at least 32 characters" in err and "guessable" not in err
