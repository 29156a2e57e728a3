"""The virtualenv with Synapse and matrix-nio (from PyPI) that the Matrix
scripts run under: created once in $SWITCHBOARD_TEST_CACHE (default
~/.cache/switchboard-tests) and reused. It sees the system's
site-packages, for Debian's python3-slixmpp, and gets slixmpp from PyPI
when the system has none.

    import synapse_venv
    synapse_venv.ensure(__file__)   # re-executes the script under the venv
"""

import os
import shutil
import subprocess
import sys

CACHE = os.environ.get("SWITCHBOARD_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "switchboard-tests")
VENV = os.path.join(CACHE, "synapse-venv")
PIP_PACKAGES = ["matrix-synapse", "matrix-nio"]


def active():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def ensure(script):
    """Returns when running under the venv; otherwise creates it if needed
    and re-executes `script` (with the same arguments) under it."""
    if active():
        return
    py = os.path.join(VENV, "bin", "python")
    base = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    marker = os.path.join(VENV, ".switchboard-ready")
    if not os.path.exists(marker):
        print(f"installing {', '.join(PIP_PACKAGES)} into {VENV} (a few minutes, once)", flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([base, "-m", "venv", "--system-site-packages", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", *PIP_PACKAGES], check=True)
        if subprocess.run([py, "-c", "import slixmpp"], capture_output=True).returncode != 0:
            subprocess.run([py, "-m", "pip", "install", "--quiet", "slixmpp"], check=True)
        open(marker, "w").close()
    os.execv(py, [py, os.path.abspath(script), *sys.argv[1:]])
