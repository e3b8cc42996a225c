"""The platform rendered with a non-default port for every service (and one API host on a port of its own): the
firewall rules, nginx's upstreams, Prometheus's scrape targets, the audit's targets and TLS endpoints and the clients'
settings all follow, and no default port is left behind. Runs the roles' own preflight tasks and templates through
ansible-playbook with the roles' defaults at their precedence (below the inventory)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from ansible_collections.analytics.platform.plugins.module_utils.platform import ENDPOINTS, port_vars

from .conftest import write_role_defaults

ROOT = Path(__file__).resolve().parents[2]
SHIFT = 1111  # every port variable: its default + 1111 (no shifted port is another's default)
PORTS = {var: default + SHIFT for var, default in port_vars().items()}
OWN_API_PORT = 3602  # app-b's own analytics_api_port (host_vars)
STRONG = "Xy7" * 8
HOSTS = {
    "edge-a": ["zone_a", "nginx"],
    "app-a": ["zone_a", "analytics_api", "pg_sink", "delta_writer"],
    "app-b": ["zone_b", "analytics_api", "delta_dashboard"],
    "kafka-a": ["zone_a", "kafka"],
    "kafka-b": ["zone_b", "kafka"],
    "db-a": ["zone_a", "postgresql", "postgresql_primary"],
    "db-b": ["zone_b", "postgresql", "postgresql_replica"],
    "store-a": ["zone_a", "seaweedfs"],
    "mon-c": ["zone_c", "monitoring", "grafana"],
    "etl-c": ["zone_c", "bento"],
    "s3-b": ["zone_b", "minio"],
}
BENTO_INSTANCES = 3  # etl-c runs three Bento instances: three ports from bento_http_port
CONSUMERS = [
    "analytics_api_kafka_bootstrap",
    "pg_sink_kafka_bootstrap",
    "delta_writer_kafka_bootstrap",
    "bento_kafka_bootstrap",
    "pg_sink_pg_port",
    "grafana_pg_port",
    "grafana_pg_host",
    "bento_pg_port",
    "grafana_prometheus_url",
    "monitoring_postgres_port",
    "audit_tls_endpoints",
]
PLAY = """
- name: Render what each host's roles derive from the catalogue
  hosts: all
  connection: local
  gather_facts: false
  vars_files: [{defaults}]
  tasks:
    - ansible.builtin.file: {{path: "{out}/{{{{ inventory_hostname }}}}", state: directory, mode: "0755"}}
    - ansible.builtin.include_tasks: {root}/roles/firewall/tasks/preflight.yml
    - ansible.builtin.template: {{src: {root}/roles/firewall/templates/nftables.conf.j2,
                                  dest: "{out}/{{{{ inventory_hostname }}}}/nftables.conf", mode: "0644"}}
    - ansible.builtin.include_tasks: {root}/roles/nginx/tasks/preflight.yml
      when: "'nginx' in group_names"
    - ansible.builtin.template: {{src: {root}/roles/nginx/templates/nginx.conf.j2,
                                  dest: "{out}/{{{{ inventory_hostname }}}}/nginx.conf", mode: "0644"}}
      when: "'nginx' in group_names"
    - ansible.builtin.include_tasks: {root}/roles/monitoring/tasks/preflight.yml
      when: "'monitoring' in group_names"
    - ansible.builtin.template: {{src: {root}/roles/monitoring/templates/prometheus.yml.j2,
                                  dest: "{out}/{{{{ inventory_hostname }}}}/prometheus.yml", mode: "0644"}}
      when: "'monitoring' in group_names"
    - ansible.builtin.template: {{src: {root}/roles/monitoring/templates/alertmanager.default.j2,
                                  dest: "{out}/{{{{ inventory_hostname }}}}/alertmanager.default", mode: "0644"}}
      when: "'monitoring' in group_names"
    - ansible.builtin.template: {{src: {root}/roles/grafana/templates/haproxy.cfg.j2,
                                  dest: "{out}/{{{{ inventory_hostname }}}}/haproxy.cfg", mode: "0644"}}
      when: "'grafana' in group_names"
    - ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}/derived.json"
        mode: "0644"
        content: >-
          {{{{ dict({consumers} | zip({consumers} | map('extract', vars)))
             | combine({{'tls': audit_tls_endpoints | analytics.platform.audit_host_endpoints(group_names,
                                                                                     hostvars[inventory_hostname])}})
             | to_nice_json }}}}

- name: Render the audit's targets
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{defaults}]
  tasks:
    - ansible.builtin.copy:
        dest: "{out}/audit.json"
        mode: "0644"
        content: >-
          {{{{ {{'api': __audit_api_hosts, 'pg': __audit_pg_targets, 'kafka': __audit_kafka_targets,
               's3': __audit_s3_targets}} | to_nice_json }}}}
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, playbook):
    tmp = tmp_path_factory.mktemp("ports")
    out = tmp / "out"
    inventory = {
        "all": {
            "vars": {
                **PORTS,
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "firewall_admin_cidrs": ["192.0.2.0/24"],
                "firewall_internal_cidrs": ["10.0.0.0/8"],
                "firewall_protect_controller": False,
                "monitoring_postgres_exporter_password": STRONG,
                "monitoring_alert_receivers": [{"name": "oncall", "type": "webhook", "url": "https://hooks.example/x"}],
                "minio_root_user": "platform-root",
                "minio_root_password": STRONG,
            },
            "children": {
                g: {"hosts": {h: {} for h, gs in HOSTS.items() if g in gs}}
                for g in {g for gs in HOSTS.values() for g in gs}
            },
        }
    }
    for i, h in enumerate(HOSTS):
        inventory["all"]["children"][HOSTS[h][1]]["hosts"][h] = {
            "ansible_host": f"10.0.0.{i + 10}",
            "zone": HOSTS[h][0],
        }
    inventory["all"]["children"]["analytics_api"]["hosts"]["app-b"]["analytics_api_port"] = OWN_API_PORT
    inventory["all"]["children"]["bento"]["hosts"]["etl-c"]["bento_instances"] = BENTO_INSTANCES
    inventory["all"]["children"]["platform"] = {"children": {g: {} for g in ("zone_a", "zone_b", "zone_c")}}
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    write_role_defaults(tmp / "defaults.yml", [*inventory["all"]["vars"], "analytics_api_port"])
    consumers = json.dumps(CONSUMERS)
    (tmp / "play.yml").write_text(PLAY.format(root=ROOT, out=out, defaults=tmp / "defaults.yml", consumers=consumers))
    r = playbook(tmp / "hosts.yml", tmp / "play.yml", cwd=tmp)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return out


def _api_port(host):
    return OWN_API_PORT if host == "app-b" else PORTS["analytics_api_port"]


def _dports(text):
    return {int(p) for group in re.findall(r"dport \{ ([0-9, ]+) \}", text) for p in group.split(", ")}


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_each_hosts_firewall_opens_its_own_ports_only(rendered, host):
    want = set()
    for e in ENDPOINTS.values():
        # Each switch at its default here (pgbouncer off, Patroni and Alertmanager on).
        if (e.group == "all" or e.group in HOSTS[host]) and e.served_by({}):
            for p in e.ports:
                first = (OWN_API_PORT if host == "app-b" and p.var == "analytics_api_port" else PORTS[p.var]) + p.offset
                want |= set(range(first, first + (BENTO_INSTANCES if p.count else 1)))
    assert _dports((rendered / host / "nftables.conf").read_text()) == want


def test_nginx_sends_each_api_host_to_its_own_port(rendered):
    conf = (rendered / "edge-a" / "nginx.conf").read_text()
    servers = re.findall(r"^\s+server (\S+) max_fails", conf, re.M)
    assert servers == [f"10.0.0.11:{PORTS['analytics_api_port']}", f"10.0.0.12:{OWN_API_PORT}"]
    listens = re.findall(r"listen (\d+)[ ;]", conf)
    assert listens == [str(PORTS[v]) for v in ("nginx_http_port", "nginx_https_port", "nginx_metrics_port")]


def test_prometheus_scrapes_every_target_on_its_hosts_port(rendered):
    config = yaml.safe_load((rendered / "mon-c" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: [t for sc in j["static_configs"] for t in sc["targets"]] for j in config["scrape_configs"]}
    assert jobs["prometheus"] == [f"10.0.0.18:{PORTS['monitoring_prometheus_port']}"]
    assert jobs["alertmanager"] == [f"10.0.0.18:{PORTS['monitoring_alertmanager_port']}"]
    alerting = config["alerting"]["alertmanagers"][0]
    assert alerting["scheme"] == "https" and alerting["static_configs"][0]["targets"] == jobs["alertmanager"]
    assert jobs["analytics_api"] == [f"10.0.0.11:{PORTS['analytics_api_port']}", f"10.0.0.12:{OWN_API_PORT}"]
    assert jobs["pg_sink"] == [f"10.0.0.11:{PORTS['pg_sink_metrics_port']}"]
    assert jobs["delta_writer"] == [f"10.0.0.11:{PORTS['delta_writer_metrics_port']}"]
    assert jobs["delta_dashboard"] == [f"10.0.0.12:{PORTS['delta_dashboard_port']}"]
    assert jobs["postgresql"] == [f"10.0.0.{i}:{PORTS['monitoring_postgres_exporter_port']}" for i in (15, 16)]
    assert len(jobs["node"]) == len(HOSTS) and all(
        t.endswith(f":{PORTS['monitoring_node_exporter_port']}") for t in jobs["node"]
    )
    # Every Bento instance, each on its own port, told apart by a process label; MinIO with its bearer token.
    first = PORTS["bento_http_port"]
    assert jobs["bento"] == [f"10.0.0.{list(HOSTS).index('etl-c') + 10}:{first + i}" for i in range(BENTO_INSTANCES)]
    bento = next(j for j in config["scrape_configs"] if j["job_name"] == "bento")
    assert [sc["labels"] for sc in bento["static_configs"]] == [
        {"instance": "etl-c", "zone": "zone_c", "process": str(i + 1)} for i in range(BENTO_INSTANCES)
    ]
    assert bento["scheme"] == "https" and "authorization" not in bento
    minio = next(j for j in config["scrape_configs"] if j["job_name"] == "minio")
    assert jobs["minio"] == [f"10.0.0.{list(HOSTS).index('s3-b') + 10}:{PORTS['minio_port']}"]
    assert minio["metrics_path"] == "/minio/v2/metrics/node"
    assert minio["authorization"] == {"credentials_file": "/etc/prometheus/minio.token"}
    # The blackbox probes: every TLS endpoint of every host on its own port, through the loopback exporter.
    tls = next(j for j in config["scrape_configs"] if j["job_name"] == "blackbox_tls")
    probed = {
        (sc["labels"]["instance"], sc["labels"]["endpoint"], sc["labels"]["__param_target"])
        for sc in tls["static_configs"]
    }
    assert {t for _h, _e, t in probed} >= {f"10.0.0.{list(HOSTS).index('etl-c') + 10}:{first + i}" for i in range(3)}
    assert ("app-b", "analytics_api", f"10.0.0.12:{OWN_API_PORT}") in probed
    assert not [p for p in probed if p[1] == "postgresql"] and all(
        sc["targets"] == ["127.0.0.1:9115"] for sc in tls["static_configs"]
    )


def test_alertmanager_listens_on_its_port(rendered):
    args = (rendered / "mon-c" / "alertmanager.default").read_text()
    assert f"--web.listen-address=:{PORTS['monitoring_alertmanager_port']} " in args
    assert f"--web.external-url=https://10.0.0.18:{PORTS['monitoring_alertmanager_port']} " in args
    assert "--cluster.listen-address= " in args or args.rstrip().endswith('--cluster.listen-address="')


def test_clients_follow_the_servers_ports(rendered):
    app = json.loads((rendered / "app-a" / "derived.json").read_text())
    kafka = [f"kafka-a:{PORTS['kafka_client_port']}", f"kafka-b:{PORTS['kafka_client_port']}"]
    for var in (
        "analytics_api_kafka_bootstrap",
        "pg_sink_kafka_bootstrap",
        "delta_writer_kafka_bootstrap",
        "bento_kafka_bootstrap",
    ):
        assert app[var] == kafka, var
    for var in ("pg_sink_pg_port", "bento_pg_port"):
        assert app[var] == PORTS["postgresql_port"], var
    # Grafana reads through its local HAProxy (Patroni with two members): the proxy's port, and the proxy reaches
    # each member's PostgreSQL and asks its Patroni on their ports.
    assert app["grafana_pg_port"] == 5433 and app["grafana_pg_host"] == "127.0.0.1"
    proxy = (rendered / "mon-c" / "haproxy.cfg").read_text()
    servers = re.findall(r"^\s+server (\S+) (\S+) check port (\d+)", proxy, re.M)
    members = [(h, f"10.0.0.{list(HOSTS).index(h) + 10}") for h in ("db-a", "db-b")]
    want = [(n, f"{a}:{PORTS['postgresql_port']}", str(PORTS["postgresql_patroni_port"])) for n, a in members]
    assert servers == want * 2  # the replicas' checks (/replica), then the leader's (/primary)
    assert app["grafana_prometheus_url"] == f"https://10.0.0.18:{PORTS['monitoring_prometheus_port']}"
    assert (
        json.loads((rendered / "db-a" / "derived.json").read_text())["monitoring_postgres_port"]
        == PORTS["postgresql_port"]
    )


def test_the_audit_probes_every_endpoint_on_its_hosts_port(rendered):
    audit = json.loads((rendered / "audit.json").read_text())
    assert [(t["host"], t["port"]) for t in audit["api"]] == [("app-a", _api_port("app-a")), ("app-b", OWN_API_PORT)]
    assert {t["port"] for t in audit["pg"]} == {PORTS["postgresql_port"]}
    assert {t["port"] for t in audit["kafka"]} == {PORTS["kafka_client_port"]}
    assert [t["endpoint"] for t in audit["s3"]] == [
        f"https://10.0.0.17:{PORTS['seaweedfs_s3_port']}",
        f"https://10.0.0.20:{PORTS['minio_port']}",
    ]
    tls = {
        h: {(e["service"], e["port"]) for e in json.loads((rendered / h / "derived.json").read_text())["tls"]}
        for h in HOSTS
    }
    assert ("analytics_api", OWN_API_PORT) in tls["app-b"] and ("analytics_api", _api_port("app-a")) in tls["app-a"]
    assert ("nginx", PORTS["nginx_https_port"]) in tls["edge-a"] and ("postgresql", PORTS["postgresql_port"]) in tls[
        "db-b"
    ]
    assert ("grafana", PORTS["grafana_port"]) in tls["mon-c"] and ("s3", PORTS["seaweedfs_s3_port"]) in tls["store-a"]


def test_no_default_port_is_left_behind(rendered):
    defaults = {str(d) for d in port_vars().values()}
    assert not defaults & {str(p) for p in PORTS.values()}, "the shift makes one port another's default"
    for f in sorted(rendered.rglob("*")):
        if f.is_file():
            numbers = set(re.findall(r"(?<![\d.])(\d{2,5})(?![\d.])", f.read_text()))
            assert not numbers & defaults - {"80"}, f"{f.relative_to(rendered)}: {sorted(numbers & defaults)}"
