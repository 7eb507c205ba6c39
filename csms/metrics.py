"""In-process counters and histograms, rendered as Prometheus text for `GET /metrics`.

Plain dicts updated from the event loop (no locks, no client library on the hot path);
gauges that live elsewhere (connections, transactions) are passed in when rendering.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

# A metric family another part renders: name, type, help text, (labels, value) samples.
Family = tuple[str, str, str, list[tuple[str, float]]]

# Seconds; fits both a charger message answered after a group commit and a command round trip.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PartnerGauge(NamedTuple):
    """One OCPI partner's connection health, as /metrics shows it."""

    partner: str
    backlog: int
    oldest_push_age: float
    last_success: float | None  # Unix time


class Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)


class Metrics:
    """What the running system counts. One instance per process, made by the app."""

    def __init__(self) -> None:
        # (direction "in"|"out", action, kind "call"|"result"|"error") -> messages
        self.messages: dict[tuple[str, str, str], int] = {}
        # charger CALLs: action -> time to answer (commit included)
        self.handled: dict[str, Histogram] = {}
        # CSMS CALLs: action -> time until the charger answered
        self.calls: dict[str, Histogram] = {}
        # (command, outcome) -> commands
        self.commands: dict[tuple[str, str], int] = {}
        # why transactions were held for staff (cdr_failed, flagged, credited) -> count
        self.held: dict[str, int] = {}
        # problem of signed meter values (Eichrecht) -> transactions held for it
        self.signature_held: dict[str, int] = {}
        # failed attempts at building a CDR
        self.cdr_failures = 0
        # (kind, action) -> charger values not taken as sent (kind: timestamp, reading,
        # register; see csms.services.charger_input.InputChecks.on_flagged)
        self.flagged: dict[tuple[str, str], int] = {}
        # messages stored as sent: (action, "stored"|"dropped") -> messages, bytes
        self.kept_messages: dict[tuple[str, str], int] = {}
        self.kept_bytes: dict[tuple[str, str], int] = {}
        # unknown charge points refused registration, by reason
        self.refused: dict[str, int] = {}
        # frames whose reading waited for the per-connection rate limit, and for how long
        self.throttled = 0
        self.throttled_seconds = 0.0
        # (HTTP listener "api"|"ocpi", reason "limit"|"header_timeout") -> connections closed
        self.http_closed: dict[tuple[str, str], int] = {}
        # listener ("api", "ocpi") -> wrong credentials given; requests refused unread
        # while their address waited out its back-off (csms.core.failures)
        self.auth_failures: dict[str, int] = {}
        self.auth_refused_limited: dict[str, int] = {}
        # (listener, kind) -> TLS handshakes that failed; kind "certificate" (the client's
        # certificate was refused: counted as failed authentication too) or "other"
        self.tls_failed: dict[tuple[str, str], int] = {}
        # group of singleton work this process may run -> whether it leads it now
        self.leading: dict[str, bool] = {}
        # Families other parts keep themselves (the load manager's), rendered last.
        self.families: list[Callable[[], Iterable[Family]]] = []

    def message(self, direction: str, action: str, kind: str) -> None:
        key = (direction, action, kind)
        self.messages[key] = self.messages.get(key, 0) + 1

    def handled_in(self, action: str, seconds: float) -> None:
        histogram = self.handled.get(action)
        if histogram is None:
            histogram = self.handled[action] = Histogram()
        histogram.observe(seconds)

    def call_answered(self, action: str, seconds: float) -> None:
        histogram = self.calls.get(action)
        if histogram is None:
            histogram = self.calls[action] = Histogram()
        histogram.observe(seconds)

    def command(self, command: str, outcome: str) -> None:
        key = (command, outcome)
        self.commands[key] = self.commands.get(key, 0) + 1

    def billing_held(self, reason: str) -> None:
        self.held[reason] = self.held.get(reason, 0) + 1

    def billing_signature_held(self, problem: str) -> None:
        self.signature_held[problem] = self.signature_held.get(problem, 0) + 1

    def billing_failed(self) -> None:
        self.cdr_failures += 1

    def input_flagged(self, kind: str, action: str) -> None:
        key = (kind, action)
        self.flagged[key] = self.flagged.get(key, 0) + 1

    def kept(self, action: str, stored: bool, size: int) -> None:
        key = (action, "stored" if stored else "dropped")
        self.kept_messages[key] = self.kept_messages.get(key, 0) + 1
        self.kept_bytes[key] = self.kept_bytes.get(key, 0) + size

    def charger_refused(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def throttle(self, seconds: float) -> None:
        self.throttled += 1
        self.throttled_seconds += seconds

    def http_connection_closed(self, listener: str, reason: str) -> None:
        key = (listener, reason)
        self.http_closed[key] = self.http_closed.get(key, 0) + 1

    def auth_failed(self, listener: str) -> None:
        self.auth_failures[listener] = self.auth_failures.get(listener, 0) + 1

    def auth_limited(self, listener: str) -> None:
        self.auth_refused_limited[listener] = self.auth_refused_limited.get(listener, 0) + 1

    def singleton_leader(self, group: str, leading: bool) -> None:
        self.leading[group] = leading

    def tls_handshake_failed(self, listener: str, certificate: bool) -> None:
        key = (listener, "certificate" if certificate else "other")
        self.tls_failed[key] = self.tls_failed.get(key, 0) + 1

    def render(
        self,
        *,
        connected: Mapping[str, int],
        active_transactions: int | None,
        database_up: bool,
        held_transactions: int | None = None,
        partners: Iterable[PartnerGauge] | None = None,
    ) -> str:
        out: list[str] = []
        _family(out, "csms_up", "gauge", "1 while the process runs.", [("", 1)])
        _family(
            out,
            "csms_database_up",
            "gauge",
            "1 when the database answered the last check.",
            [("", int(database_up))],
        )
        _family(
            out,
            "csms_singleton_leader",
            "gauge",
            "1 while this process runs a group's singleton work (charging: CDRs and "
            "reservation expiry; ocpi: publishers and pushes), 0 while another one does.",
            [(_labels(group=g), int(on)) for g, on in sorted(self.leading.items())],
        )
        _family(
            out,
            "csms_chargers_connected",
            "gauge",
            "Chargers with a live WebSocket connection, by OCPP version.",
            [(_labels(ocpp_version=v), n) for v, n in sorted(connected.items())],
        )
        if active_transactions is not None:
            _family(
                out,
                "csms_transactions_active",
                "gauge",
                "Transactions that have started and not ended.",
                [("", active_transactions)],
            )
        if partners is not None:
            rows = sorted(partners)
            _family(
                out,
                "csms_ocpi_partner_backlog",
                "gauge",
                "Pushes waiting in the outbox for an OCPI partner (undelivered).",
                [(_labels(partner=g.partner), g.backlog) for g in rows],
            )
            _family(
                out,
                "csms_ocpi_partner_oldest_push_age_seconds",
                "gauge",
                "Seconds the partner's oldest undelivered push has waited (0: none waits).",
                [(_labels(partner=g.partner), g.oldest_push_age) for g in rows],
            )
            _family(
                out,
                "csms_ocpi_partner_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last push the partner accepted (absent: none yet).",
                [
                    (_labels(partner=g.partner), g.last_success)
                    for g in rows
                    if g.last_success is not None
                ],
            )
        if held_transactions is not None:
            _family(
                out,
                "csms_transactions_held",
                "gauge",
                "Ended transactions held without a CDR until staff resolve them "
                "(csms transactions list shows why).",
                [("", held_transactions)],
            )
        _family(
            out,
            "csms_billing_held_total",
            "counter",
            "Transactions held for staff by this process, by reason "
            "(cdr_failed: its CDR could not be built; flagged: meter data or times; "
            "credited; too_large: beyond billing.max_periods or max_cdr_bytes; signature: "
            "its signed meter values failed verification).",
            [(_labels(reason=r), n) for r, n in sorted(self.held.items())],
        )
        _family(
            out,
            "csms_billing_signature_held_total",
            "counter",
            "Transactions held for staff by this process because their signed meter values "
            "(Eichrecht) failed verification, by problem (bad_signature, no_end, "
            "pagination_gap, no_public_key, ...).",
            [(_labels(problem=p), n) for p, n in sorted(self.signature_held.items())],
        )
        _family(
            out,
            "csms_billing_failures_total",
            "counter",
            "Failed attempts at building a CDR (each is retried with back-off).",
            [("", self.cdr_failures)],
        )
        _family(
            out,
            "csms_charger_values_flagged_total",
            "counter",
            "Charger values not stored as sent, by kind and action (timestamp: outside the "
            "plausible window, stored as the time of receipt; reading, register: no usable "
            "number, stored without a value). Their transactions are held for staff.",
            [(_labels(kind=k, action=a), n) for (k, a), n in sorted(self.flagged.items())],
        )
        _family(
            out,
            "csms_ocpp_messages_total",
            "counter",
            "OCPP messages by direction (in: from chargers), action and type.",
            [
                (_labels(direction=d, action=a, type=k), n)
                for (d, a, k), n in sorted(self.messages.items())
            ],
        )
        _histograms(
            out,
            "csms_ocpp_request_duration_seconds",
            "Time from a charger's CALL to our answer (database commit included), by action.",
            self.handled,
        )
        _histograms(
            out,
            "csms_ocpp_call_duration_seconds",
            "Time from our CALL to the charger's answer, by action.",
            self.calls,
        )
        _family(
            out,
            "csms_kept_messages_total",
            "counter",
            "Charger messages kept as sent (DataTransfer, events, reports), by action and "
            "outcome (dropped: over the charger's quota, answered all the same).",
            [(_labels(action=a, outcome=o), n) for (a, o), n in sorted(self.kept_messages.items())],
        )
        _family(
            out,
            "csms_kept_bytes_total",
            "counter",
            "Bytes (as JSON) of charger messages kept as sent, by action and outcome.",
            [(_labels(action=a, outcome=o), n) for (a, o), n in sorted(self.kept_bytes.items())],
        )
        _family(
            out,
            "csms_chargers_refused_total",
            "counter",
            "Unknown charge points refused registration (at the handshake or boot), by reason.",
            [(_labels(reason=r), n) for r, n in sorted(self.refused.items())],
        )
        _family(
            out,
            "csms_ocpp_throttled_total",
            "counter",
            "Charger frames read late because their connection exceeded ocpp.message_rate.",
            [("", self.throttled)],
        )
        _family(
            out,
            "csms_ocpp_throttled_seconds_total",
            "counter",
            "Seconds charger frames waited for the per-connection rate limit.",
            [("", self.throttled_seconds)],
        )
        _family(
            out,
            "csms_commands_total",
            "counter",
            "Commands sent to chargers (csms remote, API, OCPI), by command and outcome.",
            [(_labels(command=c, outcome=o), n) for (c, o), n in sorted(self.commands.items())],
        )
        _family(
            out,
            "csms_http_connections_closed_total",
            "counter",
            "Connections the HTTP listeners (api, ocpi) closed on a bound: limit (over "
            "max_connections, answered 503), header_timeout (no complete request headers in "
            "time).",
            [
                (_labels(listener=name, reason=r), n)
                for (name, r), n in sorted(self.http_closed.items())
            ],
        )
        _family(
            out,
            "csms_auth_failures_total",
            "counter",
            "Wrong credentials given (unknown, disabled or rotated-away tokens), by listener.",
            [(_labels(listener=name), n) for name, n in sorted(self.auth_failures.items())],
        )
        _family(
            out,
            "csms_auth_limited_total",
            "counter",
            "Requests refused unread (HTTP 429) while their source address waited out the "
            "back-off its wrong credentials earned, by listener.",
            [(_labels(listener=name), n) for name, n in sorted(self.auth_refused_limited.items())],
        )
        _family(
            out,
            "csms_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed, by listener and kind: certificate (the client's "
            "certificate was refused: foreign CA, expired) or other (no TLS, no common "
            "version or cipher, timeout).",
            [
                (_labels(listener=listener, kind=kind), n)
                for (listener, kind), n in sorted(self.tls_failed.items())
            ],
        )
        for families in self.families:
            for name, kind, help_text, samples in families():
                _family(out, name, kind, help_text, samples)
        return "\n".join(out) + "\n"


def labels(**labels: str) -> str:
    """Prometheus labels `{k="v",...}` (values escaped)."""
    return _labels(**labels)


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(
    out: list[str], name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]
) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        out.append(f"{name}{labels} {_number(value)}")


def _histograms(
    out: list[str], name: str, help_text: str, histograms: Mapping[str, Histogram]
) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} histogram")
    for action, histogram in sorted(histograms.items()):
        cumulative = 0
        for bound, count in zip((*BUCKETS, float("inf")), histogram.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else _number(bound)
            out.append(f'{name}_bucket{{action="{_escape(action)}",le="{le}"}} {cumulative}')
        out.append(f'{name}_sum{{action="{_escape(action)}"}} {_number(histogram.sum)}')
        out.append(f'{name}_count{{action="{_escape(action)}"}} {cumulative}')


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
