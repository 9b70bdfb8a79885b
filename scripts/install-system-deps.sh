#!/usr/bin/env bash
# System tools the tests use as judges of what we render (Debian/Ubuntu). Idempotent: re-running it only
# installs what is missing. Works as root, or through sudo for a normal user.
#
# Append to PACKAGES (one per line, with the reason) when a test needs another real tool.
set -euo pipefail

PACKAGES=(
  shellcheck              # lints every rendered shell script (bootstrap scripts, lib.sh, helpers)
  systemd                 # systemd-analyze verify on every rendered unit
  nginx                   # nginx -t on the rendered reverse-proxy config
  openssl                 # judges certificates and keys (PKI tests)
  openvpn                 # openvpn --config checks of the VPN server config
  iproute2                # ip netns for tests that start servers in their own namespace
  nftables                # nft -c -f on the metadata guard ruleset
  prometheus              # promtool check config/rules
  prometheus-alertmanager # amtool check-config
  python3-venv            # scripts/test.sh creates .venv
  openssh-client          # ssh-keygen judges SuperNode/operator keys
  openssh-server          # sshd -t judges the rendered sshd drop-in (never started: policy-rc.d below)
  iputils-ping            # ping through the real OpenVPN tunnel (tests/test_vpn_tunnel.py)
  logrotate               # logrotate -d on the VPN host's log rotation
  prometheus-blackbox-exporter # --config.check on the monitoring host's probe modules
  curl                    # the SuperLink registration commands and the ACL tests talk HTTPS with it
  dpkg-dev                # dpkg-scanpackages: a local APT repository to test the Grafana version pin with apt
  gnupg                   # gpg: keys for the apt_repo test (tests/test_apt_repo.py)
  postgresql              # a throwaway cluster on 127.0.0.1 for the backup and restore commands and the database probe (tests/test_backup.py, test_db_probe.py)
  mtail                   # the log patterns counted by the real mtail (tests/test_log_patterns.py)
  pebble                  # Let's Encrypt's test ACME server: the public certificate issues and renews (tests/test_public_tls.py)
  certbot                 # the ingress host's ACME client, run against pebble
  sudo                    # visudo -c on the app launcher's rule; the lab's SuperExec starts apps through it
  cloud-init              # the real runcmd handling, in a mount namespace: a failed bootstrap is reported (tests/test_bootstrap.py)
  prometheus-node-exporter # the site bundle's exporter, socket-activated on its tunnel addresses (tests/test_site_monitoring.py)
  swift-proxy             # OpenStack Swift on 127.0.0.1 (proxy, tempauth): backups go off the host and come back (tests/test_offsite_backup.py)
  swift-account           # ... its account,
  swift-container         # ... container
  swift-object            # ... and object servers, one-replica rings built by swift-ring-builder (package swift)
  memcached               # ... where tempauth keeps its tokens
  python3-swiftclient     # the backup hosts' uploader, `swift`, run by the rendered nina-offsite-backup
  age                     # encrypts each off-host copy on the host; the restore tests decrypt with a test identity
)

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install-system-deps: run as root or install sudo" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
# We only need the binaries: keep package scripts from starting nginx/prometheus/openvpn listening on every
# interface (a CI container or a laptop should not grow network services). policy-rc.d is honoured by
# invoke-rc.d and deb-systemd-invoke; an existing one (Docker images ship one) is left alone.
cleanup=()
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod 0755 /usr/sbin/policy-rc.d
  cleanup=(/usr/sbin/policy-rc.d)
fi
trap 'if [ "${#cleanup[@]}" -gt 0 ]; then "${SUDO[@]}" rm -f "${cleanup[@]}"; fi' EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
