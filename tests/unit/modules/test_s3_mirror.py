"""s3_mirror never writes its secret keys where the host logs module invocations (its journal)."""

from __future__ import annotations

from unittest import mock

from ansible.module_utils import basic
from ansible_collections.analytics.platform.plugins.modules import s3_mirror

SOURCE_SECRET, TARGET_SECRET = "source-secret-key-0123456789", "target-secret-key-9876543210"


def test_the_invocation_logged_on_the_host_masks_both_secret_keys(run_module):
    """The finding: both secret keys went to the host's journal in clear text (the options were not no_log)."""
    logged = []
    side = {"endpoint": "https://127.0.0.1:1", "access_key": "backup", "bucket": "analytics"}
    args = {"source": {**side, "secret_key": SOURCE_SECRET}, "target": {**side, "secret_key": TARGET_SECRET}}
    with mock.patch.object(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append((msg, log_args))):
        out = run_module(s3_mirror, args)
    assert out.failed  # nothing answers on 127.0.0.1:1
    text = repr(logged) + repr(out.result)
    assert logged, "the module logged no invocation"
    assert SOURCE_SECRET not in text and TARGET_SECRET not in text
    assert "backup" in text  # the access key is not a secret and stays readable
