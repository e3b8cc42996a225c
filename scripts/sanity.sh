#!/usr/bin/env bash
# ansible-test sanity on the collection as Galaxy users receive it: the tracked files, copied under
# <tmp>/ansible_collections/analytics/platform (ansible-test needs that path), against this tool chain's Python.
# tests/sanity/ignore-<core>.txt holds the few justified exceptions, each with its reason.
#
# ansible-test builds a virtual environment per test and bootstraps pip into it with a get-pip script it downloads
# from a host these machines cannot reach. Its cache path takes a stand-in: a few lines that run the tool chain's own
# pip ("pip install pip==<version>" into the new environment, from the package registry, as pip always does).
source "$(dirname "$0")/lib.sh"

py="$AP_VENV/bin/python"
[ -x "$py" ] || die "no tool chain in $AP_VENV: run make venv"
pip_version=$("$py" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="3.11", path="/usr/bin/python3"))["pip"])
PY
) || die "cannot read the pip version ansible-test bootstraps"
stand_in="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$stand_in" ] || ! grep -q "analytics.platform stand-in" "$stand_in"; then
  mkdir -p "$(dirname "$stand_in")"
  site=$("$py" -c 'import pip, os; print(os.path.dirname(os.path.dirname(pip.__file__)))')
  cat >"$stand_in" <<PY
# analytics.platform stand-in for get-pip (scripts/sanity.sh): the tool chain's pip installs pip into this venv.
import sys
sys.path.insert(0, "$site")
from pip._internal.cli.main import main
sys.exit(main(["install", *[a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]]))
PY
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/analytics/platform"
mkdir -p "$dest"
(cd "$AP_ROOT" && git ls-files -z | xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$dest"
version=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
step "ansible-test sanity (Python $version; the first run installs each test's requirements with pip)"
cd "$dest" && PATH="$AP_VENV/bin:$PATH" ansible-test sanity --python "$version" --color no
