"""etcd_auth's key range: a role confined to a prefix gets exactly the keys that start with it."""

import base64

from ansible_collections.analytics.platform.plugins.modules.etcd_auth import b64, range_end


def test_the_range_of_a_prefix_ends_just_after_it():
    assert range_end("/analytics-platform/") == b"/analytics-platform0"
    assert b64(range_end("/a/")) == base64.b64encode(b"/a0").decode()


def test_keys_under_the_prefix_are_in_its_range_and_others_are_not():
    prefix = "/analytics-platform/"
    end = range_end(prefix)
    inside = ["/analytics-platform/analytics/leader", "/analytics-platform/", "/analytics-platform/\xff"]
    outside = ["/analytics-platform", "/analytics-platforms/x", "/service/analytics/leader", "/b"]
    for key in inside:
        assert prefix.encode() <= key.encode() < end, key
    for key in outside:
        assert not (prefix.encode() <= key.encode() < end), key
