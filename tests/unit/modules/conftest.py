"""Run a module's main() with arguments and a fake client, returning its exit or fail JSON."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future
from types import SimpleNamespace
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleExit(SystemExit):  # like the real exit_json, not caught by `except Exception`
    def __init__(self, result, failed):
        super().__init__(result)
        self.result = result
        self.failed = failed


def done(value=None, exc=None):
    f = Future()
    if exc is not None:
        f.set_exception(exc)
    else:
        f.set_result(value)
    return f


@pytest.fixture
def run_module():
    def run(module, args, **patches):
        def exit_json(self, **kw):
            raise ModuleExit(kw, False)

        def fail_json(self, msg, **kw):
            raise ModuleExit(dict(kw, msg=msg), True)

        with (
            patch_module_args(args),
            mock.patch.object(basic.AnsibleModule, "exit_json", exit_json),
            mock.patch.object(basic.AnsibleModule, "fail_json", fail_json),
            mock.patch.multiple(module, **patches) if patches else contextlib.nullcontext(),
            pytest.raises(ModuleExit) as e,
        ):
            module.main()
        return e.value

    return run


CONN = {"bootstrap_servers": ["k1:9092"], "login_user": "admin", "login_password": "x" * 20, "ca_path": "/ca.crt"}


def ns(**kw):
    return SimpleNamespace(**kw)
