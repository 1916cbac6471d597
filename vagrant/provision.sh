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
  printf '%s\n' "wireshark-common wireshark-common/install-setuid boolean false" \
    "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections
  # No debconf pre-configuration pass (apt's DPkg::Pre-Install-Pkgs hook): it runs packages'
  # config scripts outside dpkg, where iperf3's prints "deb-systemd-helper was not called from
  # dpkg" and "Failed to stop iperf3.service" (its unit is not unpacked yet). Every config
  # script still runs, from its package's postinst, inside dpkg.
  apt_conf=$(mktemp)
  trap 'rm -f "$apt_conf"' EXIT
  echo '#clear DPkg::Pre-Install-Pkgs;' > "$apt_conf"
  apt-get update -qq
  apt-get install -c "$apt_conf" -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's mininet module lives in the system Python's dist-packages: a venv made from
# /usr/bin/python3 with --system-site-packages sees it (and python3-openvswitch).
venv="$repo/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "provision: creating $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
# The install is editable: it follows the source, and only the package's metadata (dependencies,
# console scripts) needs pip again. Its stamp keeps a repeated run (every `vagrant up`) to seconds.
# The check runs the commands themselves: a package index that failed to answer during pip's
# resolution once left an ancient oslo.config (no Python 3.11) and a venv that imported os_ken
# but could not start the controller. A venv that fails the check is made again, once.
stamp="$venv/.provisioned"
want=$(cat "$repo/setup.cfg" "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1)
works() {
  "$venv/bin/python" -c "import mininet.net, ovsdbapp, packetwalk.cli" 2>/dev/null \
    && "$venv/bin/ryu-manager" --version >/dev/null 2>&1
}
install() { "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$repo[test]"; }
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! works; then
  install
  if ! works; then
    echo "provision: the virtualenv does not start ryu-manager after pip: making it again" >&2
    rm -rf "$venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    install
  fi
  works || { echo "provision: the virtualenv cannot start ryu-manager: see pip's output above;" \
                  "run provision.sh again when the package index answers" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
echo "provision: ready ($("$venv/bin/packetwalk" --version))"
