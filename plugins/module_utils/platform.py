# Copyright: analytics.platform contributors
# Apache License 2.0 (see LICENSE)
"""The platform catalogue: ONE definition of every network endpoint the collection deploys.

Each entry names the inventory group whose hosts serve it, its ports (each set by ONE inventory variable, the owning
role's default, or derived from one), who may connect (a firewall audience), whether and how it speaks TLS, its
readiness and metrics paths and its systemd unit. Everything else is derived from it (plugins/filter/platform.py):
the firewall's port matrix, nginx's upstreams, Prometheus's scrape jobs, the audit's TLS endpoints and probe targets,
the clients' bootstrap lists and the rolling restart's readiness URLs. A port is resolved per host, from that host's
variables: a host that sets analytics_api_port: 3443 is reached on 3443 by nginx, Prometheus, the audit and its own
firewall, and every other API host keeps its own.

tests/unit/plugins/test_platform.py checks that every default here is the owning role's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Port:
    var: str  # the inventory variable that sets it (the owning role's default)
    default: int
    offset: int = 0  # a derived port: the variable's value plus this (SeaweedFS's gRPC ports)
    # (variable, default): that many consecutive ports from this one, one per instance of a service (Bento's)
    count: tuple[str, int] | tuple[()] = ()

    def resolve_all(self, host_vars):
        """Every port of it on a host with these variables: the first, then one more per further instance."""
        first = self.resolve(host_vars)
        if not self.count:
            return [first]
        var, default = self.count
        value = (host_vars or {}).get(var)
        try:
            n = int(default if value is None or value == "" else value)
        except (TypeError, ValueError):
            n = 0
        if n < 1:
            raise ValueError(f"{var} must be a number of instances, 1 or more (got {value!r})")
        if first + n - 1 > 65535:
            raise ValueError(f"{self.var}: {n} instances from port {first} run past 65535 ({var})")
        return list(range(first, first + n))

    def resolve(self, host_vars):
        value = (host_vars or {}).get(self.var)
        if value is None or value == "":
            value = self.default
        try:
            port = int(value) + self.offset
        except (TypeError, ValueError):
            raise ValueError(f"{self.var} must be a port number (got {value!r})") from None
        if not 1 <= port <= 65535:
            raise ValueError(f"{self.var}: port {port} is out of range (1-65535)")
        return port


@dataclass(frozen=True)
class Endpoint:
    group: str  # the hosts that serve it
    ports: tuple[Port, ...]
    audience: tuple[str, ...]  # firewall audiences (roles/firewall: firewall_audiences)
    description: str
    tls: str = ""  # the audit's TLS probe: the service name it reports; empty: not probed
    tls_port: int = 0  # which of the ports speaks TLS
    protocol: str = "tls"  # how the TLS probe speaks: tls, or postgres (STARTTLS-like SSLRequest)
    scheme: str = ""  # http or https when it serves HTTP
    ready: str = ""  # readiness path (rolling restarts wait for it)
    metrics: str = ""  # Prometheus metrics path
    job: str = ""  # Prometheus job name (with metrics)
    unit: str = ""  # systemd unit
    secrets: tuple[str, ...] = field(default_factory=tuple)  # inventory variables holding its secrets
    # (variable, default): a host serves it only while that boolean is on (an optional part of a role); with the
    # default None, while that variable is set (not empty)
    switch: tuple[str, bool | None] | tuple[()] = ()
    # The IP protocol: tcp or udp (with ports), or vrrp (no ports: the firewall accepts the protocol from the audience)
    proto: str = "tcp"
    # The bearer token Prometheus scrapes it with (the monitoring role writes /etc/prometheus/<name>.token)
    metrics_auth: str = ""

    def served_by(self, host_vars) -> bool:
        """Whether a host with these variables serves the endpoint: always, or while its switch variable is on."""
        if not self.switch:
            return True
        var, default = self.switch
        value = (host_vars or {}).get(var, default)
        if default is None:
            return bool(value)
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                raise ValueError(f"{var} must be true or false (got {value!r})")
            return value in ("true", "yes", "on", "1")
        return bool(value)


def _p(var, default, offset=0, count=()):
    return Port(var, default, offset, count)


# The keys are the firewall matrix's entry names (the audit reports them by these names).
ENDPOINTS: dict[str, Endpoint] = {
    "ssh": Endpoint("all", (_p("base_sshd_port", 22),), ("admin",), "sshd (keys only)"),
    "analytics_api": Endpoint(
        "analytics_api",
        (_p("analytics_api_port", 3001),),
        ("load_balancer", "monitoring"),  # nginx for requests, Prometheus for /metrics
        "The ingest API, behind nginx",
        tls="analytics_api",
        scheme="https",
        ready="/ready",
        metrics="/metrics",
        job="analytics_api",
        unit="analytics-api",
        secrets=("analytics_api_kafka_password",),
    ),
    "nginx": Endpoint(
        "nginx",
        (_p("nginx_http_port", 80), _p("nginx_https_port", 443)),
        ("public",),
        "The public edge: HTTP (redirects to HTTPS) and HTTPS",
        tls="nginx",
        tls_port=1,
        scheme="https",
    ),
    # nginx serves its own metrics (Debian's nginx exporter on the loopback, reading stub_status) over its TLS.
    "nginx_metrics": Endpoint(
        "nginx",
        (_p("nginx_metrics_port", 9113),),
        ("monitoring",),
        "nginx's metrics (the exporter behind nginx's TLS)",
        tls="nginx_metrics",
        scheme="https",
        metrics="/metrics",
        job="nginx",
    ),
    # The edges' floating address (keepalived): VRRP adverts, unicast between the nginx hosts' own addresses.
    "nginx_vrrp": Endpoint(
        "nginx",
        (),
        ("load_balancer",),
        "VRRP between the edges holding the floating address (keepalived, unicast)",
        switch=("nginx_floating_address", None),
        proto="vrrp",
    ),
    "grafana": Endpoint(
        "grafana",
        (_p("grafana_port", 3000),),
        ("internal", "vpn"),
        "Grafana (OAuth), reads the replica",
        tls="grafana",
        scheme="https",
        secrets=("grafana_admin_password", "grafana_secret_key", "grafana_oauth_client_secret"),
    ),
    "postgresql": Endpoint(
        "postgresql",
        (_p("postgresql_port", 5432),),
        ("internal",),
        "PostgreSQL (TLS only)",
        tls="postgresql",
        protocol="postgres",
        secrets=(
            "postgresql_sink_password",
            "postgresql_reader_password",
            "postgresql_replication_password",
            "postgresql_monitor_password",
            "postgresql_admin_password",
            "postgresql_backup_cipher_pass",
        ),
    ),
    # pgbouncer on the PostgreSQL hosts when postgresql_pgbouncer is on: the server's clients, TLS required (it answers
    # PostgreSQL's SSLRequest like the server).
    "pgbouncer": Endpoint(
        "postgresql",
        (_p("postgresql_pgbouncer_port", 6432),),
        ("internal",),
        "pgbouncer in front of PostgreSQL (TLS only)",
        tls="pgbouncer",
        protocol="postgres",
        switch=("postgresql_pgbouncer", False),
    ),
    "etcd": Endpoint(
        "etcd",
        (_p("etcd_client_port", 2379),),
        # Patroni on the PostgreSQL hosts; the members' own etcdctl; Prometheus (/metrics needs no user)
        ("postgresql_cluster", "etcd_cluster", "monitoring"),
        "etcd's client API (TLS; a user and password required)",
        tls="etcd",
        scheme="https",
        metrics="/metrics",
        job="etcd",
        unit="etcd",
        secrets=("etcd_root_password", "etcd_client_passwords"),
    ),
    "etcd_peer": Endpoint(
        "etcd",
        (_p("etcd_peer_port", 2380),),
        ("etcd_cluster",),
        "etcd's peer traffic (TLS, certificates both ways)",
    ),
    "patroni": Endpoint(
        "postgresql",
        (_p("postgresql_patroni_port", 8008),),
        # the members' leader checks and patronictl; Prometheus; the read-only clients' proxies (grafana role:
        # pg_proxy.yml) ask each member what it is, as they may sit on any host
        ("postgresql_cluster", "monitoring", "internal"),
        "Patroni's REST API (TLS; changes need a password)",
        tls="patroni",
        scheme="https",
        metrics="/metrics",
        job="patroni",
        unit="patroni",
        secrets=("postgresql_patroni_api_password",),
        switch=("postgresql_patroni", True),
    ),
    "kafka": Endpoint(
        "kafka",
        (_p("kafka_client_port", 9092),),
        ("internal", "admin"),
        "Kafka brokers (SASL_SSL)",
        tls="kafka",
        secrets=("kafka_admin_password", "kafka_client_passwords"),
    ),
    "seaweedfs_s3": Endpoint(
        "seaweedfs",
        (_p("seaweedfs_s3_port", 8333),),
        ("internal",),
        "SeaweedFS's S3 API",
        tls="s3",
        scheme="https",
        secrets=("seaweedfs_jwt_key", "seaweedfs_s3_secret_keys", "seaweedfs_s3_previous_credentials"),
    ),
    # MinIO's own metrics are on its API port, behind a bearer token (MINIO_PROMETHEUS_AUTH_TYPE=jwt): per node.
    "minio_api": Endpoint(
        "minio",
        (_p("minio_port", 9000),),
        ("internal", "monitoring"),
        "MinIO's S3 API (and its metrics, for Prometheus's token)",
        tls="s3",
        scheme="https",
        metrics="/minio/v2/metrics/node",
        job="minio",
        secrets=("minio_root_password", "minio_user_secrets"),
        metrics_auth="minio",
    ),
    "minio_console": Endpoint("minio", (_p("minio_console_port", 9001),), ("internal", "vpn"), "MinIO's console"),
    "delta_dashboard": Endpoint(
        "delta_dashboard",
        (_p("delta_dashboard_port", 8501),),
        ("internal", "vpn"),
        "The Delta Lake dashboard",
        tls="delta_dashboard",
        scheme="https",
        ready="/health",
        metrics="/metrics",
        job="delta_dashboard",
        unit="delta-dashboard",
        secrets=("delta_dashboard_s3_secret_key",),
    ),
    "prometheus": Endpoint(
        "monitoring",
        (_p("monitoring_prometheus_port", 9090),),
        ("internal", "vpn"),
        "Prometheus",
        tls="prometheus",
        scheme="https",
        metrics="/metrics",
        job="prometheus",
    ),
    # Alertmanager on the Prometheus hosts; 9093, its usual port, is Kafka's KRaft controller port here.
    "alertmanager": Endpoint(
        "monitoring",
        (_p("monitoring_alertmanager_port", 9095),),
        ("monitoring", "internal", "vpn"),
        "Alertmanager (Prometheus posts alerts; operators silence them)",
        tls="alertmanager",
        scheme="https",
        metrics="/metrics",
        job="alertmanager",
        switch=("monitoring_alertmanager_enabled", True),
    ),
    "alertmanager_cluster": Endpoint(
        "monitoring",
        (_p("monitoring_alertmanager_cluster_port", 9094),),
        ("monitoring",),
        "Alertmanager's cluster gossip (mutual TLS over TCP)",
        switch=("monitoring_alertmanager_enabled", True),
    ),
    # The central logs: every host's rsyslog ships its journal here (RELP, mutual TLS: the audit's one-sided TLS probe
    # would be refused, so it is not probed).
    "logs": Endpoint(
        "monitoring",
        (_p("monitoring_log_port", 2514),),
        ("internal",),
        "The central logs' RELP listener (mutual TLS)",
        switch=("monitoring_logs_enabled", True),
    ),
    "kafka_controller": Endpoint(
        "kafka",
        (_p("kafka_controller_port", 9093),),
        ("kafka_cluster",),
        "Kafka's KRaft quorum (mutual TLS)",
    ),
    "kafka_metrics": Endpoint(
        "kafka",
        (_p("kafka_metrics_port", 9404),),
        ("monitoring",),
        "Kafka's own metrics (the Prometheus JMX exporter agent in the broker)",
        tls="kafka_metrics",
        scheme="https",
        metrics="/metrics",
        job="kafka",
    ),
    "seaweedfs_internal": Endpoint(
        "seaweedfs",
        (
            _p("seaweedfs_master_port", 9333),
            _p("seaweedfs_master_port", 9333, 10000),
            _p("seaweedfs_volume_port", 8080),
            _p("seaweedfs_volume_port", 8080, 10000),
            _p("seaweedfs_filer_port", 8888),
            _p("seaweedfs_filer_port", 8888, 10000),
            _p("seaweedfs_s3_port", 8333, 10000),
        ),
        ("seaweedfs_cluster",),
        "SeaweedFS's masters, volumes and filers, and their gRPC ports (+10000)",
    ),
    # Each SeaweedFS component's metrics: plain HTTP (weed serves no TLS there) on the node's internal address only, to
    # the monitoring hosts only (firewall); one job per component.
    **{
        f"seaweedfs_{component}_metrics": Endpoint(
            "seaweedfs",
            (_p(f"seaweedfs_{component}_metrics_port", port),),
            ("monitoring",),
            f"SeaweedFS's {component} metrics (plain HTTP on the internal address)",
            scheme="http",
            metrics="/metrics",
            job=f"seaweedfs_{component}",
        )
        for component, port in (("master", 9324), ("volume", 9325), ("filer", 9326), ("s3", 9327))
    },
    # Bento's HTTP server (/ping, /ready, /metrics) over TLS, one per instance: bento_http_port, the next port, ...
    "bento_metrics": Endpoint(
        "bento",
        (_p("bento_http_port", 4195, count=("bento_instances", 1)),),
        ("monitoring",),
        "Bento's health and metrics, one port per instance",
        tls="bento_metrics",
        scheme="https",
        metrics="/metrics",
        job="bento",
        secrets=("bento_kafka_password", "bento_pg_password"),
    ),
    "node_exporter": Endpoint(
        "all",
        (_p("monitoring_node_exporter_port", 9100),),
        ("monitoring",),
        "The node exporter",
        tls="node_exporter",
        scheme="https",
        metrics="/metrics",
        job="node",
    ),
    "postgres_exporter": Endpoint(
        "postgresql",
        (_p("monitoring_postgres_exporter_port", 9187),),
        ("monitoring",),
        "The PostgreSQL exporter",
        tls="postgres_exporter",
        scheme="https",
        metrics="/metrics",
        job="postgresql",
        secrets=("monitoring_postgres_exporter_password",),
    ),
    "pg_sink_metrics": Endpoint(
        "pg_sink",
        (_p("pg_sink_metrics_port", 9101),),
        ("monitoring",),
        "The PostgreSQL sink's health and metrics",
        tls="pg_sink_metrics",
        scheme="https",
        ready="/ready",
        metrics="/metrics",
        job="pg_sink",
        unit="pg-sink",
        secrets=("pg_sink_kafka_password", "pg_sink_pg_password"),
    ),
    "delta_writer_metrics": Endpoint(
        "delta_writer",
        (_p("delta_writer_metrics_port", 9102),),
        ("monitoring",),
        "The Delta writer's health and metrics",
        tls="delta_writer_metrics",
        scheme="https",
        ready="/ready",
        metrics="/metrics",
        job="delta_writer",
        unit="delta-writer",
        secrets=("delta_writer_kafka_password", "delta_writer_s3_secret_key"),
    ),
}


@dataclass(frozen=True)
class Group:
    role: str  # the role its hosts run
    required: bool  # a whole platform needs hosts in it (the placement check refuses an inventory without)


# The platform's inventory groups, in the order site.yml deploys their roles. The placement check's required and
# optional groups and the preflight's roles per host come from here; every endpoint's group is one of them (or all).
GROUPS = {
    "kafka": Group("kafka", True),
    "etcd": Group("etcd", False),  # Patroni's consensus store (deployed before PostgreSQL)
    "postgresql_primary": Group("postgresql", True),
    "postgresql_replica": Group("postgresql", False),
    "postgresql": Group("postgresql", False),  # the parent of both (its endpoint's group)
    "seaweedfs": Group("seaweedfs", False),
    "minio": Group("minio", False),
    "analytics_api": Group("analytics_api", True),
    "pg_sink": Group("pg_sink", False),
    "delta_writer": Group("delta_writer", False),
    "delta_dashboard": Group("delta_dashboard", False),
    "bento": Group("bento", False),
    "nginx": Group("nginx", True),
    "grafana": Group("grafana", False),
    "monitoring": Group("monitoring", True),
}


def required_groups():
    return tuple(g for g, d in GROUPS.items() if d.required)


def optional_groups():
    return tuple(g for g, d in GROUPS.items() if not d.required)


def roles_of(group_names):
    """The roles a host in these groups runs, in site.yml's order, once each."""
    out = []
    for g, d in GROUPS.items():
        if g in (group_names or []) and d.role not in out:
            out.append(d.role)
    return out


def endpoint(name):
    try:
        return ENDPOINTS[name]
    except KeyError:
        raise KeyError(f"'{name}' is not an endpoint of the platform catalogue ({', '.join(ENDPOINTS)})") from None


def ports_of(name, host_vars):
    """The ports of endpoint `name` on a host with these variables (of a port with instances, the first)."""
    return [p.resolve(host_vars) for p in endpoint(name).ports]


def instance_ports(name, host_vars, index=0):
    """Every port of the `index`-th port of endpoint `name` on a host with these variables: one per instance."""
    return endpoint(name).ports[index].resolve_all(host_vars)


def port_vars():
    """Every port variable with its default (for the drift test)."""
    return {p.var: p.default for e in ENDPOINTS.values() for p in e.ports}


def secret_vars():
    """Every secret variable of the platform, in catalogue order, once."""
    out = []
    for e in ENDPOINTS.values():
        out.extend(s for s in e.secrets if s not in out)
    return out


def in_group(group, group_names):
    return group == "all" or group in (group_names or [])


def conflicts(host_vars, group_names):
    """Ports two endpoints of one host both claim, as messages naming the endpoints and variables."""
    seen: dict[int, str] = {}
    out = []
    for name, e in ENDPOINTS.items():
        if not in_group(e.group, group_names) or not e.served_by(host_vars):
            continue
        for p in e.ports:
            label = f"{name} ({p.var}{f' + {p.offset}' if p.offset else ''}{f' and {p.count[0]}' if p.count else ''})"
            for port in p.resolve_all(host_vars):
                if port in seen and not seen[port].startswith(name + " "):
                    out.append(f"port {port} is claimed by both {seen[port]} and {label}")
                seen.setdefault(port, label)
    return out
