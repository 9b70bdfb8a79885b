"""Third-party APT repositories the hosts add, each trusted only through the one signing key pinned here by its full
fingerprint (lib.sh `apt_repo`: the keyring holds that key alone, fetched again when the pin changes or the key has
expired, and a download without it configures nothing). Between boots, nina-apt-keys (delivered to every host, weekly)
fetches a key again KEY_RENEW_DAYS before it expires, installs it under the same rule, and publishes what each
keyring holds for the alerts AptKeyNotCurrent and AptKeyExpiringSoon."""

from __future__ import annotations

from dataclasses import dataclass

# Vendors publish an extended key (same fingerprint, later expiry) ahead of the old expiry: nina-apt-keys fetches the
# key again from this many days before it expires. Below KEY_WARNING_DAYS, no extended key came: the pin may need to
# change (AptKeyExpiringSoon).
KEY_RENEW_DAYS = 30
KEY_WARNING_DAYS = 14
# nina-apt-keys' check runs weekly; a check older than this means its timer stopped (AptKeyCheckStale).
KEY_CHECK_STALE_DAYS = 9


@dataclass(frozen=True)
class AptRepository:
    name: str  # /etc/apt/sources.list.d/<name>.list, /etc/apt/keyrings/<name>.gpg
    key_url: str
    fingerprint: str  # the signing key's full fingerprint
    source: str  # the deb line after [signed-by=...]; {codename} is the host's release (apt_repo fills it in)


APT_REPOSITORIES = {
    r.name: r
    for r in (
        # Grafana Labs (2023 key; the 2017 key 0E22EB88... was revoked after its exposure in January 2023).
        AptRepository("grafana", "https://apt.grafana.com/gpg.key", "B53AE77BADB630A683046005963FA27710458545", "https://apt.grafana.com stable main"),
        # PostgreSQL Global Development Group.
        AptRepository(
            "pgdg", "https://www.postgresql.org/media/keys/ACCC4CF8.asc", "B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8",
            "https://apt.postgresql.org/pub/repos/apt {codename}-pgdg main",
        ),
        # NVIDIA's CUDA repository for Ubuntu 24.04 (DCGM, the container toolkit).
        AptRepository(
            "cuda", "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/3bf863cc.pub",
            "EB693B3035CD5710E231E123A4B469963BF863CC", "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/ /",
        ),
    )
}
