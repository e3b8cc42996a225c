"""Alert delivery, live: two Prometheus servers (zone-c, zone-b) send every alert to both Alertmanagers, which form
one cluster over mutual TLS and deliver each notification once to the on-call webhook (verified TLS); a zone that
stops answering is one notification that silences its hosts' own alerts; the end of an alert is told too."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
import yaml
from conftest import ROOT, address, ansible_playbook, http, lab_host, wait_for

AM_PORT = 9095
GOSSIP_PORT = 9094
MONITORS = ("mon-c", "api-b")
PKI = "/etc/analytics-platform/pki"
INBOX = "/var/tmp/alerts.jsonl"


@pytest.fixture(scope="module")
def inbox():
    """The on-call side: lab/files/alert_receiver.py on db-b, where the scenario's webhook receiver points."""
    db = lab_host("db-b")
    src = ROOT / "lab" / "files" / "alert_receiver.py"
    db.ansible("copy", f"src={src} dest=/usr/local/bin/alert_receiver.py mode=0755", check=False)
    db.run(f"systemctl stop alert-receiver 2>/dev/null; rm -f {INBOX}")
    r = db.run(
        "systemd-run --unit=alert-receiver --collect python3 /usr/local/bin/alert_receiver.py --port 9999 "
        f"--cert {PKI}/host.crt --key {PKI}/host.key --log {INBOX}"
    )
    assert r.rc == 0, r.stderr
    assert db.run("timeout 30 bash -c 'until </dev/tcp/127.0.0.1/9999; do sleep 1; done'").rc == 0
    yield db
    db.run("systemctl stop alert-receiver")


def notifications(db) -> list[dict]:
    """Every notification the webhook received: Alertmanager's payload plus the time it arrived."""
    out = db.run(f"cat {INBOX} 2>/dev/null").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def sent(db, alertname: str, status: str, **labels) -> list[dict]:
    """The notifications that carried alert `alertname` with these labels in state `status` (firing, resolved)."""
    out = []
    for n in notifications(db):
        for a in n["body"].get("alerts", []):
            if (
                a["labels"].get("alertname") == alertname
                and a["status"] == status
                and all(a["labels"].get(k) == v for k, v in labels.items())
            ):
                out.append(n)
                break
    return out


def am_alerts(host: str) -> list[dict]:
    query = urllib.parse.quote('alertname=~"HostDown|ZoneDown"')
    code, body = http(lab_host(host), f"https://{address(host)}:{AM_PORT}/api/v2/alerts?filter={query}")
    assert code == 200, body
    return json.loads(body)


def test_the_alertmanagers_form_one_cluster_and_every_prometheus_sends_to_both():
    for name in MONITORS:
        host = lab_host(name)

        def status(name=name, host=host):
            code, body = http(host, f"https://{address(name)}:{AM_PORT}/api/v2/status")
            assert code == 200, body
            cluster = json.loads(body)["cluster"]
            return cluster if cluster["status"] == "ready" and len(cluster.get("peers", [])) == 2 else None

        assert wait_for(status, timeout=90), http(host, f"https://{address(name)}:{AM_PORT}/api/v2/status")[1]
        code, body = http(host, "https://127.0.0.1:9090/api/v1/alertmanagers")
        active = sorted(a["url"] for a in json.loads(body)["data"]["activeAlertmanagers"])
        want = sorted(f"https://{address(m)}:{AM_PORT}/api/v2/alerts" for m in MONITORS)
        assert code == 200 and active == want, body


def test_the_cluster_gossip_accepts_only_peers_with_a_platform_certificate():
    """The gossip port speaks TLS and requires a client certificate the platform's CA signed: a client without one
    is refused, one with the host certificate of a platform host completes the handshake."""
    db = lab_host("db-a")
    target = f"{address('mon-c')}:{GOSSIP_PORT}"
    base = f"timeout 10 openssl s_client -connect {target} -CAfile {PKI}/ca.crt -verify_return_error"
    anonymous = db.run(f"(sleep 2; echo) | {base} 2>&1")
    assert "Verify return code: 0" in anonymous.stdout, anonymous.stdout  # the server side is verified TLS
    refused = ("alert bad certificate", "alert certificate required", "alert handshake failure")
    assert any(a in anonymous.stdout for a in refused), anonymous.stdout  # TLS 1.3: the alert follows the handshake
    peer = db.run(f"(sleep 2; echo) | {base} -cert {PKI}/host.crt -key {PKI}/host.key 2>&1")
    assert "Verify return code: 0" in peer.stdout, peer.stdout
    assert not any(a in peer.stdout for a in refused), peer.stdout


def test_a_zone_down_is_one_notification_that_inhibits_its_hosts_alerts_and_its_end_is_told(inbox):
    """db-a is zone-a's only host: with its node exporter stopped, ZoneDown (zone-a) and HostDown (db-a) fire on both
    Prometheus servers, each sends both to both Alertmanagers; the webhook gets ZoneDown exactly once and never
    HostDown (inhibited), then "resolved" once the exporter is back."""
    db = lab_host("db-a")
    start = time.time()
    db.run("systemctl stop prometheus-node-exporter")
    try:
        fired = wait_for(lambda: sent(inbox, "ZoneDown", "firing", zone="zone-a"), timeout=180)
        assert fired, notifications(inbox)
        line = f"ZoneDown reached the webhook {fired[0]['received'] - start:.0f}s after the exporter stopped"
        report = ROOT / "reports" / "molecule" / "alert-times.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        with report.open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} monitoring scenario: {line}\n")

        # HostDown reaches both Alertmanagers, which hold it back: ZoneDown of its zone inhibits it.
        def inhibited():
            alerts = [a for a in am_alerts("api-b") if a["labels"].get("instance") == "db-a"]
            return alerts if alerts and all(a["status"]["inhibitedBy"] for a in alerts) else None

        held = wait_for(inhibited, timeout=90)
        assert held and held[0]["labels"]["alertname"] == "HostDown", am_alerts("api-b")
        assert all(a["status"]["state"] == "suppressed" for a in held)
        time.sleep(25)  # more than a group interval and the cluster's peer timeout: a duplicate would be here
        assert len(sent(inbox, "ZoneDown", "firing", zone="zone-a")) == 1, notifications(inbox)
        assert not sent(inbox, "HostDown", "firing", instance="db-a"), notifications(inbox)
    finally:
        db.run("systemctl start prometheus-node-exporter")
    resolved = wait_for(lambda: sent(inbox, "ZoneDown", "resolved", zone="zone-a"), timeout=180)
    assert resolved, notifications(inbox)
    body = resolved[0]["body"]
    assert body["receiver"] == "oncall" and body["status"] == "resolved"
    # The two Prometheus servers see the end up to a scrape and an evaluation apart; a group flush inside that gap
    # tells the end twice (Alertmanager's cluster delivers at least once). What must hold: the last word is "resolved".
    time.sleep(25)
    about = [
        n for n in notifications(inbox) if n["body"].get("groupLabels") == {"alertname": "ZoneDown", "zone": "zone-a"}
    ]
    assert about[-1]["body"]["status"] == "resolved", about


def test_every_receiver_type_renders_a_configuration_amtool_accepts_and_routes_by_severity(scenario_dir):
    """E-mail, Slack and PagerDuty cannot be reached from here: their configuration is rendered by the role's
    template, checked by the role's preflight and by amtool, and its routing tree is asked where alerts go."""
    r = ansible_playbook(scenario_dir / "receivers.yml")
    assert r.returncode == 0, r.output[-2000:]
    assert "smtp-Secret-0f-the-test" not in r.output and "0123456789abcdef" not in r.output
    mon = lab_host("mon-c")
    config = yaml.safe_load(mon.check_output("cat /tmp/alertmanager-all.yml"))
    receivers = {rc["name"]: rc for rc in config["receivers"]}
    assert receivers["team-mail"]["email_configs"][0]["to"] == "team@example.com"
    assert config["global"]["smtp_require_tls"] is True and config["global"]["smtp_smarthost"] == "smtp.example.com:587"
    assert receivers["team-slack"]["slack_configs"][0]["channel"] == "#alerts"
    assert receivers["oncall-pagerduty"]["pagerduty_configs"][0]["routing_key"] == "0123456789abcdef" * 2
    assert receivers["incidents"]["webhook_configs"][0]["send_resolved"] is False
    assert config["route"]["receiver"] == "team-mail"

    def route(labels):
        out = mon.run(f"amtool config routes test --config.file=/tmp/alertmanager-all.yml {labels}")
        assert out.rc == 0, out.stdout + out.stderr
        return out.stdout.strip()

    assert route("alertname=ZoneDown severity=critical") == "oncall-pagerduty,team-slack"
    assert route("alertname=KafkaConsumerLag severity=warning") == "team-slack"
    assert route("alertname=Other severity=info") == "team-mail"
    mon.run("rm -f /tmp/alertmanager-all.yml")
