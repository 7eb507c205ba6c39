"""Prometheus text of the in-process metrics."""

from __future__ import annotations

from csms.metrics import Metrics


def test_render_counts_and_histograms() -> None:
    m = Metrics()
    m.message("in", "Heartbeat", "call")
    m.message("in", "Heartbeat", "call")
    m.message("out", "Heartbeat", "result")
    m.handled_in("Heartbeat", 0.003)
    m.handled_in("Heartbeat", 0.2)
    m.call_answered("Reset", 1.5)
    m.command("reset", "accepted")
    m.billing_held("cdr_failed")
    m.billing_held("cdr_failed")
    m.billing_held("signature")
    m.billing_signature_held("bad_signature")
    m.billing_failed()
    m.input_flagged("timestamp", "StartTransaction")
    m.input_flagged("timestamp", "StartTransaction")
    m.input_flagged("reading", "MeterValues")
    m.kept("DataTransfer", True, 100)
    m.kept("DataTransfer", False, 65000)
    m.kept("DataTransfer", False, 1000)
    m.charger_refused("auto-registration rate reached")
    m.throttle(0.25)
    m.throttle(0.5)
    m.http_connection_closed("ocpi", "header_timeout")
    m.http_connection_closed("ocpi", "header_timeout")
    m.http_connection_closed("api", "limit")
    m.auth_failed("api")
    m.auth_failed("api")
    m.auth_limited("api")
    m.singleton_leader("ocpi", True)
    m.singleton_leader("charging", False)
    text = m.render(
        connected={"1.6": 3, "2.0.1": 0},
        active_transactions=2,
        database_up=True,
        held_transactions=4,
    )
    lines = text.splitlines()
    assert 'csms_chargers_connected{ocpp_version="1.6"} 3' in lines
    assert 'csms_chargers_connected{ocpp_version="2.0.1"} 0' in lines
    assert 'csms_ocpp_messages_total{direction="in",action="Heartbeat",type="call"} 2' in lines
    assert "csms_transactions_active 2" in lines
    assert "csms_database_up 1" in lines
    # Buckets are cumulative and end with +Inf = count.
    assert 'csms_ocpp_request_duration_seconds_bucket{action="Heartbeat",le="0.0025"} 0' in lines
    assert 'csms_ocpp_request_duration_seconds_bucket{action="Heartbeat",le="0.005"} 1' in lines
    assert 'csms_ocpp_request_duration_seconds_bucket{action="Heartbeat",le="0.25"} 2' in lines
    assert 'csms_ocpp_request_duration_seconds_bucket{action="Heartbeat",le="+Inf"} 2' in lines
    assert 'csms_ocpp_request_duration_seconds_count{action="Heartbeat"} 2' in lines
    assert 'csms_ocpp_call_duration_seconds_bucket{action="Reset",le="1"} 0' in lines
    assert 'csms_ocpp_call_duration_seconds_bucket{action="Reset",le="2.5"} 1' in lines
    assert 'csms_commands_total{command="reset",outcome="accepted"} 1' in lines
    assert "csms_transactions_held 4" in lines
    assert 'csms_billing_held_total{reason="cdr_failed"} 2' in lines
    assert 'csms_billing_held_total{reason="signature"} 1' in lines
    assert 'csms_billing_signature_held_total{problem="bad_signature"} 1' in lines
    assert "csms_billing_failures_total 1" in lines
    flagged = "csms_charger_values_flagged_total"
    assert f'{flagged}{{kind="timestamp",action="StartTransaction"}} 2' in lines
    assert f'{flagged}{{kind="reading",action="MeterValues"}} 1' in lines
    assert 'csms_kept_messages_total{action="DataTransfer",outcome="stored"} 1' in lines
    assert 'csms_kept_messages_total{action="DataTransfer",outcome="dropped"} 2' in lines
    assert 'csms_kept_bytes_total{action="DataTransfer",outcome="dropped"} 66000' in lines
    assert 'csms_chargers_refused_total{reason="auto-registration rate reached"} 1' in lines
    assert "csms_ocpp_throttled_total 2" in lines
    assert "csms_ocpp_throttled_seconds_total 0.75" in lines
    closed = "csms_http_connections_closed_total"
    assert f'{closed}{{listener="ocpi",reason="header_timeout"}} 2' in lines
    assert f'{closed}{{listener="api",reason="limit"}} 1' in lines
    assert 'csms_auth_failures_total{listener="api"} 2' in lines
    assert 'csms_auth_limited_total{listener="api"} 1' in lines
    # Every family has HELP and TYPE, and label values are escaped.
    families = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert 'csms_singleton_leader{group="ocpi"} 1' in lines
    assert 'csms_singleton_leader{group="charging"} 0' in lines
    assert len(families) == len(set(families)) == 23
    m.message("in", 'Odd"Action\\', "call")
    assert 'action="Odd\\"Action\\\\"' in m.render(
        connected={}, active_transactions=None, database_up=False
    )
