import dataclasses
import typing
from pathlib import Path

import pytest

from csms.config import (
    Config,
    ConfigError,
    build_config,
    environment_warnings,
    load_config,
    sqlite_file,
    with_data_dir,
)


def _float_keys() -> list[tuple[str, str]]:
    """Every configuration key whose value is a float, as (section, key)."""
    sections = typing.get_type_hints(Config)
    out = []
    for name, cls in sections.items():
        if not dataclasses.is_dataclass(cls):
            continue  # data_dir, config_file: where the settings came from
        hints = typing.get_type_hints(cls)
        out += [(name, f.name) for f in dataclasses.fields(cls) if hints[f.name] is float]
    return out


FLOAT_KEYS = _float_keys()


def test_defaults_match_the_documented_contract() -> None:
    c = build_config({}, {})
    assert c.database.url == "sqlite+aiosqlite:///csms.db"
    assert (c.ocpp.host, c.ocpp.port, c.ocpp.path) == ("0.0.0.0", 9000, "/ocpp")
    assert (c.api.host, c.api.port) == ("127.0.0.1", 9200)
    assert (c.ocpi.port, c.ocpi.base_url) == (9100, "http://localhost:9100")
    assert (c.log.level, c.log.format) == ("info", "console")


def test_listener_bounds_have_documented_defaults_and_env_overrides() -> None:
    c = build_config({}, {})
    for section, connections, body in ((c.api, 64, 1024 * 1024), (c.ocpi, 256, 4 * 1024 * 1024)):
        assert (section.header_timeout, section.body_timeout, section.idle_timeout) == (
            10.0,
            30.0,
            75.0,
        )
        assert (section.max_connections, section.max_body_size) == (connections, body)
    assert c.ocpp.handshake_timeout == 10.0
    tuned = build_config(
        {}, {"CSMS_OCPI_MAX_CONNECTIONS": "1000", "CSMS_OCPI_HEADER_TIMEOUT": "2.5"}
    )
    assert (tuned.ocpi.max_connections, tuned.ocpi.header_timeout) == (1000, 2.5)


def test_cluster_defaults_and_env_overrides() -> None:
    c = build_config({}, {})
    assert (c.cluster.node_id, c.cluster.heartbeat_interval, c.cluster.dead_after) == (
        "",
        10.0,
        30.0,
    )
    assert c.cluster.pickup_timeout == 2.0
    tuned = build_config({}, {"CSMS_CLUSTER_NODE_ID": "ocpp-1", "CSMS_CLUSTER_DEAD_AFTER": "12"})
    assert (tuned.cluster.node_id, tuned.cluster.dead_after) == ("ocpp-1", 12.0)


def test_environment_overrides_file() -> None:
    c = build_config(
        {"ocpp": {"port": 9001}},
        {
            "CSMS_OCPP_PORT": "9002",
            "CSMS_DATABASE_URL": "sqlite+aiosqlite:///x.db",
            "CSMS_OCPP_REQUIRE_AUTH": "true",
            "CSMS_OCPP_PING_INTERVAL": "0",
        },
    )
    assert c.ocpp.port == 9002
    assert c.database.url == "sqlite+aiosqlite:///x.db"
    assert c.ocpp.require_auth is True
    assert c.ocpp.ping_interval == 0.0


@pytest.mark.parametrize(
    ("raw", "env", "message"),
    [
        ({"ocpp": {"prot": 1}}, {}, "unknown config key ocpp.prot"),
        ({"nope": {}}, {}, "unknown config section [nope]"),
        ({"ocpp": {"registration": "maybe"}}, {}, "ocpp.registration must be one of"),
        ({"ocpp": {"port": "9000"}}, {}, "ocpp.port must be an integer"),
        ({"ocpp": {"port": 70000}}, {}, "ocpp.port must be between 0 and 65535"),
        ({}, {"CSMS_OCPP_PORT": "x"}, "ocpp.port (from environment) must be an integer"),
        ({}, {"CSMS_LOG_FORMAT": "xml"}, "log.format must be one of"),
        ({"ocpp": {"path": "ocpp"}}, {}, "ocpp.path must start with '/'"),
        ({"billing": {"max_attempts": 0}}, {}, "billing.max_attempts must be at least 1"),
        ({}, {"CSMS_BILLING_RETRY_DELAY": "0"}, "billing.retry_delay must be positive"),
        ({"ocpi": {"header_timeout": 0}}, {}, "ocpi.header_timeout must be positive"),
        ({}, {"CSMS_API_BODY_TIMEOUT": "-1"}, "api.body_timeout must be positive"),
        ({"api": {"idle_timeout": 0}}, {}, "api.idle_timeout must be positive"),
        ({"ocpi": {"max_connections": 0}}, {}, "ocpi.max_connections must be at least 1"),
        ({"api": {"max_body_size": 10}}, {}, "api.max_body_size must be at least 1024"),
        ({"ocpp": {"handshake_timeout": 0}}, {}, "ocpp.handshake_timeout must be positive"),
        ({}, {"CSMS_CLUSTER_PICKUP_TIMEOUT": "0"}, "cluster.pickup_timeout must be positive"),
        (
            {"cluster": {"heartbeat_interval": 10, "dead_after": 5}},
            {},
            "cluster.dead_after must be longer than cluster.heartbeat_interval",
        ),
        ({"cluster": {"node_id": "a\nb"}}, {}, "cluster.node_id must be printable"),
        (
            {"billing": {"retry_delay": 60, "retry_max_delay": 10}},
            {},
            "billing.retry_max_delay must not be below billing.retry_delay",
        ),
    ],
)
def test_bad_values_name_the_key(
    raw: dict[str, typing.Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        build_config(raw, env)
    assert message in str(info.value)


def test_example_config_documents_every_key_with_its_default(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "config.example.toml"
    c = load_config(example, env={}, data_dir=tmp_path)
    assert c == with_data_dir(build_config({}, {}), tmp_path, example)
    text = example.read_text()
    from dataclasses import fields

    for section in ("database", "ocpp", "api", "ocpi", "billing", "log", "ca"):
        for f in fields(getattr(c, section)):
            assert f"\n{f.name} = " in text or f"\n# {f.name} = " in text, f"{section}.{f.name}"


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[ocpp\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_float_keys_are_known() -> None:
    assert ("ocpp", "call_timeout") in FLOAT_KEYS and ("database", "commit_delay_ms") in FLOAT_KEYS
    assert len(FLOAT_KEYS) >= 10


@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS)
@pytest.mark.parametrize("literal", ["nan", "inf", "-inf", "+inf"])
def test_nan_and_inf_from_toml_are_refused(
    tmp_path: Path, section: str, key: str, literal: str
) -> None:
    path = tmp_path / "csms.toml"
    path.write_text(f"[{section}]\n{key} = {literal}\n")  # TOML's own float literals
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    shown = literal.lstrip("+")
    assert str(info.value) == f"{section}.{key} must be a finite number, not {shown}"


@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS)
@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity"])
def test_nan_and_inf_from_the_environment_are_refused(section: str, key: str, text: str) -> None:
    env = {f"CSMS_{section.upper()}_{key.upper()}": text}
    with pytest.raises(ConfigError) as info:
        build_config({}, env)
    assert str(info.value) == (
        f"{section}.{key} (from environment) must be a finite number, not {text!r}"
    )


def test_finite_floats_still_pass() -> None:
    c = build_config({"ocpp": {"call_timeout": 2}}, {"CSMS_OCPI_PUSH_INTERVAL": "1e-1"})
    assert c.ocpp.call_timeout == 2.0 and c.ocpi.push_interval == 0.1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ocpp": {"prot": 1}}, "unknown config key ocpp.prot (did you mean ocpp.port?)"),
        ({"ocp": {}}, "unknown config section [ocp] (did you mean [ocpp]?)"),
        (
            {"api": {"tokenfile": "x"}},
            "unknown config key api.tokenfile (did you mean api.token_file?)",
        ),
        ({"ocpp": {"zzz": 1}}, "unknown config key ocpp.zzz"),
    ],
)
def test_unknown_keys_name_the_closest_one(raw: dict[str, typing.Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(raw, {})
    assert str(info.value) == message


def test_unknown_environment_variables_are_reported_with_the_closest_setting() -> None:
    env = {
        "CSMS_OCPP_PROT": "1",  # a typo
        "CSMS_NOTHING_LIKE_IT": "1",
        "CSMS_OCPP_PORT": "9000",  # a setting
        "CSMS_DATA_DIR": "/srv/csms",  # read by csms, not a key
        "CSMS_SIM_PASSWORD": "pw",  # the simulators' own
        "HOME": "/root",
    }
    assert environment_warnings(env) == [
        "environment variable CSMS_NOTHING_LIKE_IT is not a csms setting; ignored",
        "environment variable CSMS_OCPP_PROT is not a csms setting; ignored "
        "(did you mean CSMS_OCPP_PORT?)",
    ]
    assert environment_warnings({"CSMS_DATADIR": "x"}) == [
        "environment variable CSMS_DATADIR is not a csms setting; ignored "
        "(did you mean CSMS_DATA_DIR?)"
    ]
    # load_config tells the caller, once per variable; it still loads.
    told: list[str] = []
    config = load_config(None, env={"CSMS_OCPP_PROT": "1"}, data_dir="/nowhere", warn=told.append)
    assert config.ocpp.port == 9000
    assert told == environment_warnings({"CSMS_OCPP_PROT": "1"})


def test_relative_paths_are_resolved_against_the_data_dir(tmp_path: Path) -> None:
    env = {"CSMS_DATA_DIR": str(tmp_path / "site")}
    config = load_config(None, env=env)
    assert config.data_dir == str(tmp_path / "site")
    assert config.config_file == ""
    assert config.database.url == f"sqlite+aiosqlite:///{tmp_path}/site/csms.db"
    assert sqlite_file(config.database.url) == tmp_path / "site" / "csms.db"
    assert config.api.token_file == str(tmp_path / "site" / ".csms" / "api-token")
    # The option wins over the variable; a relative one is taken from the working directory.
    other = load_config(None, env=env, data_dir=tmp_path / "other")
    assert other.database.url == f"sqlite+aiosqlite:///{tmp_path}/other/csms.db"
    # Absolute paths, in-memory and non-SQLite URLs are kept as written; a query is kept.
    for url in (
        "sqlite+aiosqlite:////var/lib/csms/x.db",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite://",
        "postgresql+asyncpg://u:p@db/csms",
    ):
        resolved = load_config(None, env={**env, "CSMS_DATABASE_URL": url})
        assert resolved.database.url == url
    query = load_config(None, env={**env, "CSMS_DATABASE_URL": "sqlite:///data/x.db?timeout=5"})
    assert query.database.url == f"sqlite:///{tmp_path}/site/data/x.db?timeout=5"
    absolute = load_config(None, env={**env, "CSMS_API_TOKEN_FILE": "/etc/csms/token"})
    assert absolute.api.token_file == "/etc/csms/token"


def test_config_file_from_the_working_directory_else_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    data.mkdir()
    monkeypatch.chdir(work)
    (data / "csms.toml").write_text("[ocpp]\nport = 9001\n")
    told: list[str] = []
    config = load_config(None, env={}, data_dir=data, warn=told.append)
    assert (config.ocpp.port, config.config_file, told) == (9001, str(data / "csms.toml"), [])
    (work / "csms.toml").write_text("[ocpp]\nport = 9002\n")
    config = load_config(None, env={}, data_dir=data, warn=told.append)
    assert (config.ocpp.port, config.config_file) == (9002, str(work / "csms.toml"))
    assert told == [
        f"reading {work / 'csms.toml'}, not {data / 'csms.toml'} of the data directory "
        "(name the file with --config)"
    ]
    # Without a data directory both are the same file: nothing to say.
    told.clear()
    assert load_config(None, env={}, warn=told.append).ocpp.port == 9002
    assert told == []
    with pytest.raises(ConfigError) as info:
        load_config("missing.toml", env={})
    assert str(info.value) == f"config file {work / 'missing.toml'} does not exist"


def test_charger_auth_limits_are_read_and_checked() -> None:
    c = build_config(
        {"ocpp": {"auth_free_failures": 2}},
        {"CSMS_OCPP_MAX_CONNECTIONS_PER_ADDRESS": "5", "CSMS_OCPP_AUTH_BACKOFF_CAP_SECONDS": "7"},
    )
    assert (
        c.ocpp.auth_free_failures,
        c.ocpp.auth_backoff_cap_seconds,
        c.ocpp.max_connections_per_address,
    ) == (2, 7.0, 5)
    for key, value, message in (
        ("auth_free_failures", -1, "ocpp.auth_free_failures must not be negative"),
        ("auth_backoff_cap_seconds", 0, "ocpp.auth_backoff_cap_seconds must be positive"),
        ("max_connections_per_address", -1, "must not be negative"),
    ):
        with pytest.raises(ConfigError) as info:
            build_config({"ocpp": {key: value}}, {})
        assert message in str(info.value)
