"""The firewall matrix filter: rules per host, audiences by CIDR and group, and bad entries named."""

import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.analytics.platform.plugins.filter.firewall import (
    address_allowed,
    firewall_rules,
    host_address,
    interface_of,
)

AUDIENCES = {
    "public": {"cidrs": ["0.0.0.0/0", "::/0"]},
    "internal": {"cidrs": ["10.0.1.0/24", "10.0.2.0/24"]},
    "admin": {"cidrs": ["192.0.2.10/32"]},
    "load_balancer": {"groups": ["nginx"]},
}
MATRIX = {
    "ssh": {"group": "all", "ports": [22], "audience": "admin"},
    "analytics_api": {"group": "analytics_api", "ports": [3001], "audience": "load_balancer"},
    "nginx": {"group": "nginx", "ports": [443, 80], "audience": "public"},
    "postgresql": {"group": "postgresql", "ports": [5432], "audience": ["internal", "admin"]},
}
GROUPS = {"all": ["api1", "lb1", "db1"], "analytics_api": ["api1"], "nginx": ["lb1"], "postgresql": ["db1"]}
HOSTVARS = {
    "api1": {"ansible_host": "10.0.1.5"},
    "lb1": {"ansible_host": "lb1.example", "ansible_facts": {"default_ipv4": {"address": "10.0.2.9"}}},
    "db1": {"ansible_host": "10.0.2.7", "firewall_address": "10.0.2.8"},
}


def rules_for(host, matrix=None, audiences=None):
    rules = firewall_rules(matrix or MATRIX, audiences or AUDIENCES, GROUPS, HOSTVARS, host)
    return {r["service"]: r for r in rules}


def test_host_gets_only_its_groups_entries():
    assert set(rules_for("api1")) == {"ssh", "analytics_api"}
    assert set(rules_for("lb1")) == {"ssh", "nginx"}
    assert set(rules_for("db1")) == {"ssh", "postgresql"}


def test_group_audience_resolves_to_host_addresses_from_facts_when_ansible_host_is_a_name():
    assert rules_for("api1")["analytics_api"]["v4"] == ["10.0.2.9/32"]


def test_public_audience_matches_any_source():
    nginx = rules_for("lb1")["nginx"]
    assert nginx["any"] is True and nginx["ports"] == [80, 443]


def test_several_audiences_are_merged():
    pg = rules_for("db1")["postgresql"]
    assert pg["v4"] == ["10.0.1.0/24", "10.0.2.0/24", "192.0.2.10/32"]


def test_a_portless_protocol_is_accepted_by_number_from_its_audience_only():
    matrix = dict(MATRIX, nginx_vrrp={"group": "nginx", "audience": "load_balancer", "proto": "vrrp"})
    vrrp = rules_for("lb1", matrix=matrix)["nginx_vrrp"]
    assert (vrrp["proto"], vrrp["number"], vrrp["ports"], vrrp["any"]) == ("vrrp", 112, [], False)
    assert vrrp["v4"] == ["10.0.2.9/32"]
    assert rules_for("lb1")["nginx"]["number"] == 0
    # It opens no port: the controller's SSH check does not count it.
    assert not address_allowed(firewall_rules(matrix, AUDIENCES, GROUPS, HOSTVARS, "lb1"), "10.0.2.9", 112)


def test_address_allowed():
    rules = firewall_rules(MATRIX, AUDIENCES, GROUPS, HOSTVARS, "db1")
    assert address_allowed(rules, "192.0.2.10", 22)
    assert not address_allowed(rules, "10.0.1.4", 22)
    assert address_allowed(rules, "10.0.1.4", 5432)
    assert not address_allowed(rules, "203.0.113.1", 5432)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"group": "all", "ports": [70000], "audience": "admin"}, "firewall_matrix.bad: port 70000 is out of range"),
        ({"group": "all", "ports": [0], "audience": "admin"}, "firewall_matrix.bad: port 0 is out of range"),
        ({"group": "all", "ports": ["22"], "audience": "admin"}, "firewall_matrix.bad: port '22' is out of range"),
        ({"group": "all", "ports": [22], "audience": "partners"}, "audience 'partners' is unknown"),
        ({"group": "all", "ports": [22], "audience": "admin", "proto": "icmp"}, "proto 'icmp' is not one of"),
        ({"group": "all", "ports": [22]}, "firewall_matrix.bad: 'audience' is missing"),
        ({"group": "all", "ports": [22], "audience": "admin", "port": 1}, "unknown key(s) port"),
        ({"group": "nginx", "ports": [112], "audience": "admin", "proto": "vrrp"}, "proto 'vrrp' has no ports"),
        ({"group": "nginx", "audience": "admin"}, "firewall_matrix.bad: 'ports' is missing"),
    ],
)
def test_bad_entries_are_named(entry, message):
    with pytest.raises(AnsibleFilterError, match=None) as e:
        rules_for("db1", matrix=dict(MATRIX, bad=entry))
    assert message in str(e.value)


def test_bad_audience_cidr_is_named():
    audiences = dict(AUDIENCES, internal={"cidrs": ["10.0.1.0/33"]})
    with pytest.raises(AnsibleFilterError) as e:
        rules_for("db1", audiences=audiences)
    assert "firewall_audiences.internal.cidrs: '10.0.1.0/33'" in str(e.value)


def test_host_without_address_is_named():
    hostvars = dict(HOSTVARS, lb1={"ansible_host": "lb1.example"})
    with pytest.raises(AnsibleFilterError) as e:
        firewall_rules(MATRIX, AUDIENCES, GROUPS, hostvars, "api1")
    assert "cannot find an IP address for host 'lb1'" in str(e.value)


def test_to_megabytes():
    from ansible_collections.analytics.platform.plugins.filter.sizes import to_megabytes

    assert to_megabytes("4GB") == 4096
    assert to_megabytes("64MB") == 64
    assert to_megabytes("1024kB") == 1
    for bad in ("4G", "64", "lots", "-1MB"):
        with pytest.raises(AnsibleFilterError) as e:
            to_megabytes(bad, "postgresql_work_mem")
        assert str(e.value).startswith(f"postgresql_work_mem: '{bad}' is not a size")


def test_minio_erasure():
    from ansible_collections.analytics.platform.plugins.filter.minio import minio_erasure

    assert minio_erasure(4) == {"set_size": 4, "sets": 1, "parity": 2, "read_quorum": 2, "write_quorum": 3}
    assert minio_erasure(6, "EC:3")["write_quorum"] == 4
    assert minio_erasure(32) == {"set_size": 16, "sets": 2, "parity": 4, "read_quorum": 12, "write_quorum": 12}
    with pytest.raises(AnsibleFilterError, match="3 drives cannot form MinIO erasure sets"):
        minio_erasure(3)
    with pytest.raises(AnsibleFilterError, match="minio_parity EC:5 is impossible for erasure sets of 8 drives"):
        minio_erasure(8, 5)


def test_minio_prometheus_token_is_the_jwt_minio_verifies():
    """HS512 over header.payload with the user's secret key, issuer prometheus, subject the user: checked with an
    independent HMAC (cryptography) and decoded field by field; the same credentials give the same token."""
    import base64
    import json

    from ansible_collections.analytics.platform.plugins.filter.minio import minio_prometheus_token
    from cryptography.hazmat.primitives import hashes, hmac

    token = minio_prometheus_token("s3cr3t-key-of-32-characters-long", "platform-root")
    header, payload, signature = token.split(".")

    def decode(part):
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(decode(header)) == {"alg": "HS512", "typ": "JWT"}
    assert json.loads(decode(payload)) == {"exp": 4102444800, "iss": "prometheus", "sub": "platform-root"}
    mac = hmac.HMAC(b"s3cr3t-key-of-32-characters-long", hashes.SHA512())
    mac.update(f"{header}.{payload}".encode())
    mac.verify(decode(signature))  # raises InvalidSignature on a wrong one
    assert "=" not in token and token == minio_prometheus_token("s3cr3t-key-of-32-characters-long", "platform-root")
    assert token != minio_prometheus_token("another-secret-key-of-32-chars!!", "platform-root")
    with pytest.raises(AnsibleFilterError, match="needs the access key and secret key"):
        minio_prometheus_token("", "platform-root")


FACTS = {
    "interfaces": ["lo", "eth0", "eth1"],
    "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}},
    "eth0": {"ipv4": {"address": "10.0.1.14", "netmask": "255.255.255.0"}},
    "eth1": {
        "ipv4": {"address": "203.0.113.21", "netmask": "255.255.255.0"},
        "ipv4_secondaries": [{"address": "203.0.113.10"}],
    },
}


@pytest.mark.parametrize(
    ("address", "interface"),
    [
        ("10.0.1.14", "eth0"),
        ("203.0.113.10", "eth1"),
        ("203.0.113.10/24", "eth1"),
        ("10.0.1.200/24", "eth0"),
        ("10.0.1.15", ""),
        ("198.51.100.10/24", ""),
    ],
)
def test_the_interface_of_an_address_or_a_network(address, interface):
    assert interface_of(address, FACTS) == interface


def test_a_bad_address_and_an_unknown_host_are_named():
    with pytest.raises(AnsibleFilterError, match=re.escape("'203.0.113.300/24' is not an address")):
        interface_of("203.0.113.300/24", FACTS)
    with pytest.raises(AnsibleFilterError, match="host 'lb9' is not in the inventory"):
        host_address("lb9", HOSTVARS)
    assert [host_address(h, HOSTVARS) for h in ("api1", "lb1", "db1")] == ["10.0.1.5", "10.0.2.9", "10.0.2.8"]
