#!/usr/bin/env bash
# The one install script: Vagrant, CI and README all run this. Idempotent; run as root.
# Installs the Debian packages the lab uses and a virtualenv at .venv/ with packetwalk in it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
packages=(
  openvswitch-switch openvswitch-common python3-openvswitch   # ovsdb-server, ovs-vswitchd, ovs-* tools
  mininet bridge-utils net-tools                              # Mininet (system Python) and its LinuxBridge
  iproute2 iputils-ping iputils-arping ethtool traceroute procps  # namespaces, veth, pings, GARPs
  tcpdump tshark iperf3                                       # captures and throughput
  graphviz                                                    # diagrams
  python3 python3-venv python3-pip
)

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh: run as root (sudo bash vagrant/provision.sh)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "provision: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's mininet module lives in the system Python's dist-packages: a venv made from
# /usr/bin/python3 with --system-site-packages sees it (and python3-openvswitch).
if [ ! -x "$repo/.venv/bin/python" ]; then
  echo "provision: creating $repo/.venv"
  /usr/bin/python3 -m venv --system-site-packages "$repo/.venv"
fi
"$repo/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$repo[test]"
"$repo/.venv/bin/python" -c "import mininet.net, os_ken, ovsdbapp, packetwalk" \
  || { echo "provision: the virtualenv cannot import its dependencies" >&2; exit 1; }
echo "provision: ready ($("$repo/.venv/bin/packetwalk" --version))"
