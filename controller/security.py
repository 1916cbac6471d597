"""Port security at the first hop (NSX SpoofGuard, OVN's port_security), and punts bounded.

Table PORT_SECURITY sits between CLASSIFY and ARP_SNOOP. A VM port passes only frames whose
source MAC is the port's and, for ARP and IPv4, whose sender / source IP is one of the
port's addresses (configured, or learned for a "learn the IP" port); IPv6 from its MAC's
link-local address (and "::" for duplicate address detection); DHCP discover from 0.0.0.0;
RARP from its MAC (a moved VM announcing itself). A learn-IP port's ARP for an address it
does not hold yet goes to the controller, which learns it or refuses it. Everything else is
dropped right there, by a drop flow per port per cause: the flow's priority names the cause
and its packet count is the counter (read back with flow stats). A VLAN-tagged frame is
dropped too: a VM port is an access port. A trusted port (an edge or router VM that forwards
for others) is only kept from sending tagged frames.

Every controller-bound flow passes an OpenFlow meter: its port's meter if it matches on a VM
port, else the hypervisor's. Pure: (network, hypervisor) -> flows and meters.
"""
from __future__ import annotations

from controller.flows import ETH_ARP, ETH_IP, Flow, Goto, Meter, Output
from controller.model import Attachment, Hypervisor, Network
from controller.tables import Table

ETH_IPV6, ETH_RARP = 0x86DD, 0x8035
VLAN_PRESENT = (0x1000, 0x1000)     # OFPVID_PRESENT: any 802.1Q tag
ALLOW, LEARN = 200, 150
# A drop flow's priority is its cause: the most specific first.
CAUSES = {
    300: "vlan-tagged",        # an 802.1Q tag from an access port
    120: "arp-spoofed",        # ARP whose sender MAC or IP is not the port's
    119: "ipv4-spoofed",       # IPv4 from an address that is not the port's
    118: "ipv6-spoofed",       # IPv6 from an address that is not the port's link-local
    110: "ethertype",          # anything else from the port's MAC
    100: "mac-spoofed",        # a source MAC that is not the port's
}
PRIORITY = {cause: p for p, cause in CAUSES.items()}
HV_METER = 1                 # every punt that is not one port's
PORT_METER_BASE = 0x100      # + ofport: one meter per VM port
HV_PUNTS_PER_S, PORT_PUNTS_PER_S = 200, 50


def port_meter(a: Attachment) -> int:
    return PORT_METER_BASE + a.ofport


def ipv6_link_local(mac: str) -> str:
    """fe80::/64 with the modified EUI-64 of `mac` (RFC 4291), as the guest derives it."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 0x02
    eui = b[:3] + [0xFF, 0xFE] + b[3:]
    return "fe80::" + ":".join(f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2))


def _drop(a: Attachment, cause: str, match: dict) -> Flow:
    return Flow.of(Table.PORT_SECURITY, PRIORITY[cause], {"in_port": a.ofport, **match}, [], f"port:{a.lport}")


def port_flows(a: Attachment, ips: list[str], learn: bool, trusted: bool) -> list[Flow]:
    """The port-security flows of one VM port whose addresses are `ips`."""
    owner, port = f"port:{a.lport}", {"in_port": a.ofport}
    on = [Goto(Table.ARP_SNOOP)]
    flows = [_drop(a, "vlan-tagged", {"vlan_vid": VLAN_PRESENT})]
    if trusted:
        return flows + [Flow.of(Table.PORT_SECURITY, ALLOW, port, on, owner)]
    mine = {**port, "eth_src": a.mac}
    arp = {**mine, "eth_type": ETH_ARP, "arp_sha": a.mac}
    allow = [{**arp, "arp_spa": "0.0.0.0"},                                   # ARP probe (RFC 5227)
             {**mine, "eth_type": ETH_IP, "ipv4_src": "0.0.0.0", "ipv4_dst": "255.255.255.255",
              "ip_proto": 17, "udp_src": 68, "udp_dst": 67},                  # DHCP discover
             {**mine, "eth_type": ETH_IPV6, "ipv6_src": ipv6_link_local(a.mac)},
             {**mine, "eth_type": ETH_IPV6, "ipv6_src": "::", "ip_proto": 58},   # DAD
             {**mine, "eth_type": ETH_RARP}]
    for ip in sorted(ips):
        allow += [{**arp, "arp_spa": ip}, {**mine, "eth_type": ETH_IP, "ipv4_src": ip}]
    flows += [Flow.of(Table.PORT_SECURITY, ALLOW, m, on, owner) for m in allow]
    if learn:          # an address it does not hold yet: the controller learns it, or refuses
        flows.append(Flow.of(Table.PORT_SECURITY, LEARN, arp, [Output("controller")], owner))
    flows += [_drop(a, "arp-spoofed", {**mine, "eth_type": ETH_ARP}),
              _drop(a, "ipv4-spoofed", {**mine, "eth_type": ETH_IP}),
              _drop(a, "ipv6-spoofed", {**mine, "eth_type": ETH_IPV6}),
              _drop(a, "ethertype", mine),
              _drop(a, "mac-spoofed", {})]
    return flows


def defaults() -> list[Flow]:
    return [Flow.of(Table.PORT_SECURITY, 0, {}, [], "pipeline")]


def attachment_flows(net: Network, a: Attachment | None) -> list[Flow]:
    """Port security for one VM port, from intent and the bindings it holds."""
    if a is None:
        return []
    lp = net.logical_port(a)
    return port_flows(a, sorted(net.ips_of(a.vni, a.lport)), bool(lp and lp.learn), bool(lp and lp.trusted))


def security_flows(net: Network, hv: Hypervisor) -> list[Flow]:
    """Port security for every VM port on `hv`."""
    return defaults() + [f for a in hv.attachments.values() for f in attachment_flows(net, a)]


def meter_punts(flows: list[Flow], hv: Hypervisor) -> list[Flow]:
    """Every controller-bound flow behind a meter: its VM port's, or the hypervisor's."""
    ports = {a.ofport: a for a in hv.attachments.values()}
    out = []
    for f in flows:
        if Output("controller") in f.actions and not any(isinstance(x, Meter) for x in f.actions):
            a = ports.get(dict(f.match).get("in_port"))
            f = Flow.of(f.table, f.priority, dict(f.match), [Meter(port_meter(a) if a else HV_METER), *f.actions],
                        f.owner)
        out.append(f)
    return out


def meters(hv: Hypervisor) -> dict[int, tuple[int, int]]:
    """The meters `hv` should have: meter id -> (packets per second, burst)."""
    wanted = {HV_METER: (HV_PUNTS_PER_S, HV_PUNTS_PER_S)}
    for a in hv.attachments.values():
        wanted[port_meter(a)] = (PORT_PUNTS_PER_S, PORT_PUNTS_PER_S)
    return wanted


def drop_counts(stats) -> dict[str, dict[str, int]]:
    """From PORT_SECURITY flow stats as (owner, priority, packets): lport -> cause -> packets."""
    out: dict[str, dict[str, int]] = {}
    for owner, priority, packets in stats:
        cause = CAUSES.get(priority)
        if cause and owner.startswith("port:"):
            out.setdefault(owner[5:], {})[cause] = out.get(owner[5:], {}).get(cause, 0) + packets
    return out
