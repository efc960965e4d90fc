"""One frozen, typed Config built once at start from TOML and the environment.

Lookup order: ``--config PATH``; else ``./inbox-daemon.toml``; else
``/etc/inbox-daemon/config.toml``; else the embedded defaults. Every key can be overridden
with ``INBOX_DAEMON_<SECTION>_<KEY>`` (e.g. ``INBOX_DAEMON_SMTP_PORT=2526``).
A bad key or value raises ConfigError naming it; the CLI turns that into exit 78.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError
from .providers import AUTH_METHODS, GRANTS, PROVIDERS

__all__ = [
    "Config",
    "DatabaseConfig",
    "SmtpConfig",
    "QueryConfig",
    "SecurityConfig",
    "ParserConfig",
    "IntakeConfig",
    "ImapConfig",
    "ImapAccount",
    "LogConfig",
    "PostfixConfig",
    "MetricsConfig",
    "PrivacyConfig",
    "WebConfig",
    "EMBEDDED_WEB_LISTEN",
    "load_config",
    "query_tcp_address",
    "default_state_dir",
    "SEARCH_PATHS",
]

SEARCH_PATHS = (Path("inbox-daemon.toml"), Path("/etc/inbox-daemon/config.toml"))
ENV_PREFIX = "INBOX_DAEMON_"


def default_state_dir() -> Path:
    """Where the embedded defaults keep their files: $INBOX_DAEMON_HOME, else ./var."""
    return Path(os.environ.get("INBOX_DAEMON_HOME", "var")).absolute()


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""  # empty: SQLite file under the state directory
    auto_upgrade: bool = True  # serve upgrades an embedded SQLite by itself


@dataclass(frozen=True)
class SmtpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2525
    recipients: tuple[str, ...] = ()  # accepted RCPT addresses; empty = any
    max_message_bytes: int = 10 * 1024 * 1024
    timeout_seconds: float = 60.0  # silence from a client (RFC 5321 4.5.3.2 asks servers for minutes; we are behind an MTA)
    transaction_seconds: float = 900.0  # MAIL to the end of DATA, however steadily the bytes come
    max_recipients: int = 100
    max_connections: int = 256
    # The listener and the write before each 250 in a process of their own (intake/smtp_process.py);
    # false: on the daemon's own loop, beside processing and lookups (one process fewer).
    own_process: bool = True


@dataclass(frozen=True)
class QueryConfig:
    socket: str = ""  # empty: query.sock under the state directory
    tcp: str = ""  # optional "host:port"
    max_connections: int = 1024  # at most what RLIMIT_NOFILE leaves free (lookup/limits.py)
    max_connections_per_peer: int = 256  # per uid on the Unix socket, per IP address on TCP
    idle_seconds: float = 300.0
    request_seconds: float = 10.0  # a request line must be complete this long after its first byte
    sync_seconds: float = 1.0  # how often other processes' changes are pulled in (README: within 2 s)
    # CHECK <relay-address> <order> records the address on that order's opt-out (docs/threat-model.md)
    learn_addresses: bool = True


@dataclass(frozen=True)
class SecurityConfig:
    """Who may add to the blocklist (``inbox_daemon.trust``)."""

    # Embedded default false so the quick start works; deploy/config.example.toml sets true.
    require_registered_forwarder: bool = False
    require_dkim: bool = False  # apply only notices whose Amazon DKIM signature verifies
    relay_domains: tuple[str, ...] = ("marketplace.amazon.*",)  # buyer relay address domains
    dkim_domains: tuple[str, ...] = ("amazon.*", "*.amazon.*", "amazonses.com")  # Amazon's d=
    dkim_keys_file: str = ""  # pinned keys "<selector>._domainkey.<domain> <TXT>" instead of DNS
    forwarder_rate_per_hour: int = 0  # cap on new opt-outs per forwarder and hour; 0 = none
    seller_address: str = ""  # base of per-seller addresses; default: first smtp.recipients
    trusted_relays: tuple[str, ...] = ()  # SMTP clients (IP or CIDR) that vouch for From / Resent-From
    trusted_arc_sealers: tuple[str, ...] = ()  # ARC sealer domains whose authentication results count
    max_buyers_per_notice: int = 25  # more buyers in one message: held in quarantine
    group: str = ""  # group that may read the database (0640); empty: owner only (0600)


@dataclass(frozen=True)
class IntakeConfig:
    """Backpressure: past either bound SMTP answers 451 4.3.2 (the MTA holds the mail) and
    IMAP and imports wait."""

    backlog: int = 20_000  # stored messages waiting for processing
    bytes_in_flight: int = 128 * 1024 * 1024  # message bytes being received or written
    # A claim on a stored message not renewed for this long is taken over by another daemon
    # (its owner died or hung); the owner renews every third of it while at work.
    claim_seconds: float = 30.0


@dataclass(frozen=True)
class ParserConfig:
    """Which parser processing runs: a module exposing ``parse_notice`` and
    ``PARSER_VERSION``; empty = the built-in ``inbox_daemon.notices``. A hook for tests and
    for trying a parser upgrade on kept mail (``quarantine reprocess``)."""

    module: str = ""
    workers: int = -1  # parser processes beside the event loop; -1: one; 0: a thread of this process
    timeout_seconds: float = 30.0  # wall clock per message; past it: outcome error "parse timeout"


@dataclass(frozen=True)
class ImapAccount:
    name: str
    host: str
    username: str
    port: int = 993
    tls: str = "implicit"  # implicit | starttls | none (loopback only)
    password: str = ""
    password_file: str = ""
    mailbox: str = "INBOX"
    on_stored: str = "flag"  # flag | move
    flag_keyword: str = "$OptOutProcessed"
    move_to: str = ""
    poll_seconds: float = 60.0
    idle: bool = True
    # OAuth 2.0 (``auth`` xoauth2 | oauthbearer); secrets come from files or systemd credentials
    # ($CREDENTIALS_DIRECTORY), never from this file. ``provider`` fills the rest (providers.py).
    auth: str = "password"  # password | xoauth2 | oauthbearer
    provider: str = "generic"  # gmail | microsoft365 | generic
    grant: str = "refresh_token"  # refresh_token (delegated) | client_credentials (app-only)
    client_id: str = ""
    client_secret_file: str = ""
    client_secret_credential: str = ""  # a systemd credential's name
    token_file: str = ""  # the refresh token: written by `imap authorize` and when it rotates
    token_url: str = ""
    device_url: str = ""
    scopes: tuple[str, ...] = ()
    tenant: str = ""  # Microsoft Entra tenant (domain or id) in the endpoints
    token_auth: str = "client_secret_basic"  # or client_secret_post, | client_secret_post at the token endpoint

    @property
    def oauth(self) -> bool:
        return self.auth != "password"

    def __repr__(self) -> str:  # never print a password (log.py redacts too)
        return f"ImapAccount(name={self.name!r}, host={self.host!r}, username={self.username!r})"


@dataclass(frozen=True)
class ImapConfig:
    accounts: tuple[ImapAccount, ...] = ()


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"  # auto (console on a TTY, JSON otherwise) | json | console
    repeat_seconds: float = 10.0  # a warning a peer can repeat: one line per kind this often, then a summary


@dataclass(frozen=True)
class PostfixConfig:
    """Postfix enforces the blocklist itself: a policy service and/or a socketmap table."""

    policy: str = ""  # "host:port" or an absolute Unix socket path; off when empty
    socketmap: str = ""  # the same, for socketmap:inet:HOST:PORT:blocklist
    policy_action: str = "REJECT"  # REJECT | DEFER | HOLD | DISCARD for a blocked recipient
    exempt_senders: tuple[str, ...] = ()  # envelope senders never checked ("a@b.example", "@b.example")
    max_connections: int = 256  # per listener (Postfix keeps one per smtpd process)
    max_connections_per_peer: int = 192  # per user (Unix socket or loopback TCP) or remote address
    idle_seconds: float = 600.0  # without a completed request; Postfix closes its own at 300 s
    request_seconds: float = 10.0  # a request must be complete this long after its first byte


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = ""  # "host:port" serving Prometheus text exposition at /metrics; off when empty


# The quick start (no config file) serves the web pages here; a config file turns them on by
# setting [web] listen. Loopback only: the first user is made with ``inbox-daemon users add``.
EMBEDDED_WEB_LISTEN = "127.0.0.1:8025"


@dataclass(frozen=True)
class WebConfig:
    """The operator pages and the HTTP API (``inbox_daemon.web``)."""

    listen: str = ""  # "host:port"; off when empty (the embedded defaults: EMBEDDED_WEB_LISTEN)
    # A header a reverse proxy sets to the user it authenticated (e.g. "X-Remote-User"); only
    # for a listener that nothing but the proxy can reach (deploy/README.md, nginx).
    trusted_proxy_header: str = ""
    secure_cookies: bool = False  # mark cookies Secure: set it when a TLS proxy fronts the pages
    session_hours: float = 12.0  # a login lasts this long


@dataclass(frozen=True)
class PrivacyConfig:
    """Buyer data under Amazon's Data Protection Policy (docs/privacy.md): where the key file is
    and how long plain-text evidence is kept. The pseudonymous blocklist entry is kept for good."""

    key_file: str = ""  # empty: $CREDENTIALS_DIRECTORY/privacy-key (systemd LoadCredential=), else privacy.key in the state directory
    retain_days: int = 30  # raw messages and plain-text buyer data are purged this long after they came
    retain_days_held: int = 90  # messages still held for review are kept until decided or this long


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    parser: ParserConfig = field(default_factory=ParserConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    imap: ImapConfig = field(default_factory=ImapConfig)
    log: LogConfig = field(default_factory=LogConfig)
    postfix: PostfixConfig = field(default_factory=PostfixConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    web: WebConfig = field(default_factory=WebConfig)
    source: str = "embedded defaults"  # the file it came from, for the start-up log
    state_dir: str = ""
    # ``section.key`` of every setting the file itself set (not the environment): a reload
    # refuses a file that lost one of them (inbox_daemon/reload.py, a half-written file)
    file_keys: frozenset[str] = frozenset()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{Path(self.state_dir) / 'inbox-daemon.db'}"

    @property
    def query_socket(self) -> str:
        return self.query.socket or str(Path(self.state_dir) / "query.sock")

    @property
    def privacy_key_file(self) -> Path:
        """The key file: as configured; else the systemd credential ``privacy-key`` when the
        unit loads one (LoadCredential=privacy-key:/etc/inbox-daemon/privacy.key); else beside
        the embedded database."""
        if self.privacy.key_file:
            return Path(self.privacy.key_file)
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if credentials and (Path(credentials) / "privacy-key").exists():
            return Path(credentials) / "privacy-key"
        return Path(self.state_dir) / "privacy.key"

    @property
    def is_embedded_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "smtp": SmtpConfig,
    "query": QueryConfig,
    "security": SecurityConfig,
    "parser": ParserConfig,
    "intake": IntakeConfig,
    "log": LogConfig,
    "postfix": PostfixConfig,
    "metrics": MetricsConfig,
    "privacy": PrivacyConfig,
    "web": WebConfig,
}


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (explicit path, or the first search path that exists), then env."""
    env = os.environ if environ is None else environ
    data, source = _read_file(path)
    file_keys = _file_keys(data)
    for key, raw in env.items():
        if key.startswith(ENV_PREFIX) and key not in ("INBOX_DAEMON_HOME", "INBOX_DAEMON_CONFIG"):
            _set_from_env(data, key, raw)
    unknown = set(data) - set(_SECTIONS) - {"imap"}
    if unknown:
        raise ConfigError(f"unknown section [{sorted(unknown)[0]}]")
    built: dict[str, Any] = {name: _build(cls, name, data.get(name, {})) for name, cls in _SECTIONS.items()}
    built["imap"] = _build_imap(data.get("imap", {}))
    if source == "embedded defaults" and "listen" not in data.get("web", {}):
        built["web"] = replace(built["web"], listen=EMBEDDED_WEB_LISTEN)
    cfg = Config(**built, source=source, state_dir=str(default_state_dir()), file_keys=file_keys)
    _validate(cfg)
    return cfg


def _read_file(path: str | Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        found = next((p for p in SEARCH_PATHS if p.is_file()), None)
        if found is None:
            return {}, "embedded defaults"
        path = found
    try:
        with open(path, "rb") as fh:
            _check_private(path, os.fstat(fh.fileno()))
            return tomllib.load(fh), str(path)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _check_private(path: str | Path, st: os.stat_result) -> None:
    """The config decides who may add to the blocklist: refuse a file that anyone but its
    owner may change (group or other write bits), or whose owner is neither root nor the
    user the daemon runs as (that user could rewrite it). Checked on the open file: no race
    with a rename in between. Only regular files: ``/dev/null`` stands for "no settings"."""
    if not stat.S_ISREG(st.st_mode):
        return
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"config file {path} is writable by others than its owner (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}): chmod go-w {path}")
    if st.st_uid not in (0, os.geteuid()):
        raise ConfigError(f"config file {path} belongs to uid {st.st_uid}, neither root nor this user "
                          f"(uid {os.geteuid()}): chown it to one of them")


def _file_keys(data: Mapping[str, Any]) -> frozenset[str]:
    """``section.key`` for each value the file sets (``imap.accounts`` as one key)."""
    found: set[str] = set()
    for section, values in data.items():
        if isinstance(values, Mapping):
            found.update(f"{section}.{name}" for name in values)
        else:
            found.add(section)
    return frozenset(found)


def _set_from_env(data: dict[str, Any], key: str, raw: str) -> None:
    rest = key[len(ENV_PREFIX):].lower()
    section, _, name = rest.partition("_")
    if section not in _SECTIONS or not name:
        raise ConfigError(f"unknown environment setting {key}")
    data.setdefault(section, {})[name] = _EnvValue(raw)


class _EnvValue(str):
    """A string from the environment: coerced to the field's type, unlike TOML values."""


def _build(cls: type, section: str, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"[{section}] must be a table")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"unknown key {section}.{name}")
        kwargs[name] = _coerce(f"{section}.{name}", known[name].type, value)
    return cls(**kwargs)


def _coerce(where: str, type_name: Any, value: Any) -> Any:
    """Check (TOML) or convert (environment) one value against the field's declared type."""
    t = str(type_name)
    from_env = isinstance(value, _EnvValue)
    try:
        if t == "bool":
            if from_env:
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                return low in ("1", "true", "yes", "on")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if t == "int":
            if isinstance(value, bool) or not (from_env or isinstance(value, int)):
                raise ValueError
            return int(value)
        if t == "float":
            if isinstance(value, bool) or not (from_env or isinstance(value, (int, float))):
                raise ValueError
            return float(value)
        if t == "str":
            if not isinstance(value, str):
                raise ValueError
            return str(value)
        if t.startswith("tuple[str"):
            items = [v.strip() for v in value.split(",") if v.strip()] if from_env else value
            if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                raise ValueError
            return tuple(items)
    except ValueError:
        pass
    raise ConfigError(f"{where}: expected {t.replace('tuple[str, ...]', 'a list of strings')}, got {value!r}")


def _build_imap(values: Any) -> ImapConfig:
    if not isinstance(values, dict) or set(values) - {"accounts"}:
        raise ConfigError("[imap] takes only [[imap.accounts]] tables")
    accounts = values.get("accounts", [])
    if not isinstance(accounts, list):
        raise ConfigError("imap.accounts must be an array of tables ([[imap.accounts]])")
    built = []
    for i, acct in enumerate(accounts):
        if not isinstance(acct, dict):
            raise ConfigError(f"imap.accounts[{i}] must be a table")
        acct = _with_preset(i, acct)
        acct = {"name": acct.get("name") or f"{acct.get('username', '')}@{acct.get('host', '')}", **acct}
        for required in ("host", "username"):
            if not acct.get(required):
                raise ConfigError(f"imap.accounts[{i}].{required} is required")
        built.append(_build(ImapAccount, f"imap.accounts[{i}]", acct))
    return ImapConfig(accounts=tuple(built))


def _with_preset(i: int, acct: dict[str, Any]) -> dict[str, Any]:
    """The account's keys over its provider's defaults; ``{tenant}`` filled into the URLs."""
    name = acct.get("provider", "generic")
    if name not in PROVIDERS:
        raise ConfigError(f"imap.accounts[{i}].provider must be {'|'.join(PROVIDERS)}")
    preset = PROVIDERS[name]
    app_only = acct.get("grant") == "client_credentials"
    defaults: dict[str, Any] = {
        "host": preset.host, "port": preset.port, "tls": preset.tls, "auth": preset.auth,
        "token_url": preset.token_url, "device_url": preset.device_url, "tenant": preset.tenant,
        "scopes": list(preset.app_scopes if app_only else preset.scopes), "token_auth": preset.token_auth,
    }
    merged = {**{k: v for k, v in defaults.items() if v not in ("", [])}, **acct}
    tenant = merged.get("tenant", "")
    for key in ("token_url", "device_url"):
        if isinstance(merged.get(key), str) and isinstance(tenant, str):
            merged[key] = merged[key].replace("{tenant}", tenant)
    return merged


def _oauth_checks(acct: ImapAccount) -> list[tuple[bool, str]]:
    """One account's authentication settings: a password, or what an OAuth 2.0 grant needs."""
    where = f"imap account {acct.name}"
    if acct.auth not in AUTH_METHODS:
        return [(False, f"{where}: auth must be {'|'.join(AUTH_METHODS)}")]
    if not acct.oauth:
        return [(bool(acct.password) != bool(acct.password_file), f"{where}: set exactly one of password, password_file")]
    secret = bool(acct.client_secret_file) + bool(acct.client_secret_credential)
    loopback = acct.token_url.startswith(("http://127.0.0.1", "http://[::1]", "http://localhost"))
    return [
        (not acct.password and not acct.password_file, f"{where}: auth = {acct.auth} takes no password"),
        (acct.grant in GRANTS, f"{where}: grant must be {'|'.join(GRANTS)}"),
        (bool(acct.client_id), f"{where}: auth = {acct.auth} needs client_id"),
        (acct.token_url.startswith("https://") or loopback, f"{where}: token_url must be https:// (http only on loopback)"),
        (secret <= 1, f"{where}: set at most one of client_secret_file, client_secret_credential"),
        (acct.grant != "refresh_token" or bool(acct.token_file), f"{where}: grant = refresh_token needs token_file"),
        (acct.grant != "client_credentials" or secret == 1, f"{where}: grant = client_credentials needs a client secret"),
        (acct.grant != "client_credentials" or acct.tenant not in ("organizations", "common"),
         f"{where}: grant = client_credentials needs tenant (the organisation's domain or id)"),
        (acct.token_auth in ("client_secret_basic", "client_secret_post"),
         f"{where}: token_auth must be client_secret_basic|client_secret_post"),
    ]


def _validate(cfg: Config) -> None:
    checks = [
        (1 <= cfg.smtp.port <= 65535 or cfg.smtp.port == 0, "smtp.port must be 0..65535"),
        (cfg.smtp.max_message_bytes > 0, "smtp.max_message_bytes must be positive"),
        (cfg.smtp.timeout_seconds > 0, "smtp.timeout_seconds must be positive"),
        (cfg.intake.claim_seconds >= 1, "intake.claim_seconds must be at least 1"),
        (cfg.intake.backlog > 0, "intake.backlog must be positive"),
        (cfg.intake.bytes_in_flight >= cfg.smtp.max_message_bytes,
         "intake.bytes_in_flight must be at least smtp.max_message_bytes (one message alone must fit)"),
        (cfg.query.max_connections > 0, "query.max_connections must be positive"),
        (cfg.query.max_connections_per_peer > 0, "query.max_connections_per_peer must be positive"),
        (cfg.query.idle_seconds > 0, "query.idle_seconds must be positive"),
        (cfg.query.request_seconds > 0, "query.request_seconds must be positive"),
        (cfg.query.sync_seconds > 0, "query.sync_seconds must be positive"),
        (cfg.log.level in ("debug", "info", "warning", "error"), "log.level must be debug|info|warning|error"),
        (cfg.log.repeat_seconds > 0, "log.repeat_seconds must be positive"),
        (cfg.log.format in ("auto", "json", "console"), "log.format must be auto|json|console"),
        (cfg.security.forwarder_rate_per_hour >= 0, "security.forwarder_rate_per_hour must be 0 (no cap) or positive"),
        (cfg.security.max_buyers_per_notice > 0, "security.max_buyers_per_notice must be positive"),
        (all(_is_network(r) for r in cfg.security.trusted_relays),
         "security.trusted_relays must be IP addresses or CIDR blocks"),
        (cfg.security.group == "" or _is_group(cfg.security.group), "security.group: no such group"),
        (cfg.security.seller_address == "" or cfg.security.seller_address.count("@") == 1,
         "security.seller_address must be local@domain"),
        (cfg.web.session_hours > 0, "web.session_hours must be positive"),
        (cfg.web.trusted_proxy_header == "" or all(c.isalnum() or c == "-" for c in cfg.web.trusted_proxy_header),
         "web.trusted_proxy_header must be a header name"),
        (cfg.privacy.retain_days >= 1, "privacy.retain_days must be at least 1"),
        (cfg.privacy.retain_days_held >= cfg.privacy.retain_days,
         "privacy.retain_days_held must be at least privacy.retain_days"),
        (cfg.database.url == "" or cfg.database.url.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "postgres"),
         "database.url must be a sqlite:/// or postgresql:// URL"),
        (cfg.database.url == "" or _parses_as_url(cfg.database.url),
         "database.url cannot be read as a URL (scheme://user:password@host:port/database)"),
    ]
    if cfg.query.tcp:
        host, _, port = cfg.query.tcp.rpartition(":")
        checks.append((bool(host) and port.isdigit() and int(port) <= 65535, "query.tcp must be host:port"))
    checks += _listen_checks(cfg)
    for acct in cfg.imap.accounts:
        checks += [
            (acct.tls in ("implicit", "starttls", "none"), f"imap account {acct.name}: tls must be implicit|starttls|none"),
            (acct.tls != "none" or acct.host in ("127.0.0.1", "::1", "localhost"),
             f"imap account {acct.name}: tls = none is allowed only for loopback"),
            (acct.on_stored in ("flag", "move"), f"imap account {acct.name}: on_stored must be flag|move"),
            (acct.on_stored != "move" or bool(acct.move_to), f"imap account {acct.name}: on_stored = move needs move_to"),
            (acct.poll_seconds > 0, f"imap account {acct.name}: poll_seconds must be positive"),
        ] + _oauth_checks(acct)
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _parses_as_url(url: str) -> bool:
    """SQLAlchemy can read it (a port that is a number, a known layout). Its own error text
    repeats the URL, password included, so only the verdict is kept."""
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        return False
    return True


def _is_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _is_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _listen_checks(cfg: Config) -> list[tuple[bool, str]]:
    """The [postfix] and [metrics] listeners: "host:port" (or an absolute path where a Unix socket will do)."""
    checks = [
        (cfg.postfix.policy_action.upper() in ("REJECT", "DEFER", "HOLD", "DISCARD"),
         "postfix.policy_action must be REJECT|DEFER|HOLD|DISCARD"),
        (cfg.postfix.max_connections > 0, "postfix.max_connections must be positive"),
        (cfg.postfix.max_connections_per_peer > 0, "postfix.max_connections_per_peer must be positive"),
        (cfg.postfix.idle_seconds > 0, "postfix.idle_seconds must be positive"),
        (cfg.postfix.request_seconds > 0, "postfix.request_seconds must be positive"),
        (all(s.count("@") == 1 for s in cfg.postfix.exempt_senders),
         "postfix.exempt_senders must be addresses or @domain"),
    ]
    for key, value, unix in (("postfix.policy", cfg.postfix.policy, True), ("postfix.socketmap", cfg.postfix.socketmap, True),
                             ("metrics.listen", cfg.metrics.listen, False), ("web.listen", cfg.web.listen, False)):
        if value and not (unix and value.startswith("/")):
            host, _, port = value.rpartition(":")
            what = "an absolute socket path or host:port" if unix else "host:port"
            checks.append((bool(host) and port.isdigit() and int(port) <= 65535, f"{key} must be {what}"))
    return checks


def query_tcp_address(cfg: Config) -> tuple[str, int] | None:
    """The optional TCP listener as (host, port)."""
    if not cfg.query.tcp:
        return None
    host, _, port = cfg.query.tcp.rpartition(":")
    return host.strip("[]"), int(port)
