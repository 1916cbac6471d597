"""The br-int pipeline, declared once: every table's number, name and purpose.

Names follow OVN's habit (where and what): a packet from a VM walks them in order;
a packet from a tunnel has already been switched (and routed) at its first hop and
enters at L2_LOOKUP.
"""
import enum


class Table(enum.IntEnum):
    CLASSIFY = 0        # in_port -> logical switch: VM port sets the VNI, tunnel port marks "from tunnel"
    PORT_SECURITY = 5   # a VM port sends only from its MAC and its addresses; the rest is dropped, per cause
    ARP_SNOOP = 10      # ARP from a VM whose binding is not known yet goes to the controller
    ARP_RESPONDER = 20  # broadcast ARP request for a known IP is answered here, at the hypervisor
    L3_INPUT = 30       # distributed router: packets for the router's own IPs, TTL checks
    L3_ROUTING = 40     # distributed router: to the vMAC -> routed onto the destination switch
    L3_MTU = 45         # distributed router: a routed packet larger than the logical MTU goes to the controller
    L3_ARP_RESOLVE = 50  # distributed router: next-hop IP -> destination MAC
    L2_LOOKUP = 60      # known unicast: local port or the tunnel to the VTEP that hosts the MAC
    FLOOD = 70          # broadcast / unknown unicast / multicast: local ports + head-end replication
    IN_TRANSIT = 75     # frames for a VM port that just left br-int (its failover group): held by the controller

    @property
    def purpose(self) -> str:
        return PURPOSE[self]


PURPOSE = {
    Table.CLASSIFY: "port to logical switch",
    Table.PORT_SECURITY: "first hop: only the port's MAC and addresses",
    Table.ARP_SNOOP: "learn VM IP bindings (to controller)",
    Table.ARP_RESPONDER: "ARP suppression",
    Table.L3_INPUT: "router's own IPs, TTL",
    Table.L3_ROUTING: "distributed routing",
    Table.L3_MTU: "oversize routed packets (ICMP fragmentation needed)",
    Table.L3_ARP_RESOLVE: "next hop to MAC",
    Table.L2_LOOKUP: "known unicast",
    Table.FLOOD: "BUM: local ports + head-end replication",
    Table.IN_TRANSIT: "frames for a port that just left: held until it lands",
}

# Registers carried through the pipeline (NXM regs, visible in ovs-ofctl as reg0...).
REG_FROM_TUNNEL = "reg0"   # 1: the packet came in on a tunnel port; never replicate it to tunnels again
REG_NEXT_HOP = "reg1"      # distributed router: the IPv4 next hop L3_ARP_RESOLVE looks up
REG_TOO_BIG = "reg2"       # bit 0: the routed frame is longer than the logical MTU allows (check_pkt_larger)

# Each table's name in OVSDB (Flow_Table), the controller writes them: `ovs-ofctl --names
# dump-flows br-int` shows table=l2_lookup, and ovs-ofctl accepts the names where a number goes.
TABLE_NAMES = {int(t): t.name.lower() for t in Table}
