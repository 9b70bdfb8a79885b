"""Programs that run on the VMs, shipped by the SSH delivery as text: `nina-deliver`, `nina-check`, `nina-realm`,
`nina-jupyter-access`, and the site bundle's `nina-check`. Standard library only (a bare Ubuntu 24.04 host runs them); nothing of the project is
imported here, and nothing imports them."""

from pathlib import Path

DELIVER = "nina_deliver.py"  # installed as /usr/local/sbin/nina-deliver
CHECK = "nina_check.py"  # installed as /usr/local/sbin/nina-check
SITE_CHECK = "site_check.py"  # ./nina-check in an on-premises site's bundle (nina/bundle/check.py)
REALM = "nina_realm.py"  # installed as /usr/local/sbin/nina-realm on the Keycloak host
JUPYTER_ACCESS = "nina_jupyter_access.py"  # installed as /usr/local/sbin/nina-jupyter-access on the JupyterHub host


def program_source(filename: str) -> bytes:
    """A program's exact bytes, as the delivery ships it."""
    return (Path(__file__).resolve().parent / filename).read_bytes()
