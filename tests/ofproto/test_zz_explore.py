from controller.l2 import l2_flows
from controller.model import Attachment, Hypervisor, Network
from mininet_topos.topology import parse_topology

TOPO = {"name": "t", "hypervisors": [{"name": "hvt"}, {"name": "hv2"}, {"name": "hv3"}],
        "logical_switches": [{"name": "blue", "vni": 5001, "subnet": "10.1.1.0/24"},
                             {"name": "red", "vni": 5002, "subnet": "10.1.1.0/24"}]}

def test_explore(ovs):
    net = Network(parse_topology(TOPO))
    hvt = net.hypervisors["hvt"] = Hypervisor("hvt", "127.0.0.1", "192.168.50.1")
    hv2 = net.hypervisors["hv2"] = Hypervisor("hv2", "x", "192.168.50.2")
    hv3 = net.hypervisors["hv3"] = Hypervisor("hv3", "x", "192.168.50.3")
    net.set_attachments(hvt, {"vm1": Attachment("vm1", 1, "vm1", "00:50:56:00:00:01", 5001),
                              "vm2": Attachment("vm2", 2, "vm2", "00:50:56:00:00:02", 5001),
                              "vm3": Attachment("vm3", 3, "vm3", "00:50:56:00:00:03", 5002)})
    net.set_attachments(hv2, {"b2": Attachment("b2", 1, "b2", "00:50:56:00:00:12", 5001)})
    net.set_attachments(hv3, {"r3": Attachment("r3", 1, "r3", "00:50:56:00:00:13", 5002)})
    hvt.tunnels = {"hv2": 10, "hv3": 11}
    net.learn_binding(5001, "10.1.1.1", "00:50:56:00:00:01")
    net.learn_binding(5001, "10.1.1.12", "00:50:56:00:00:12")
    ovs.install(l2_flows(net, hvt))
    out = [ovs.dump_flows(), ovs.hv.sh("ovs-appctl ovs/route/show"), ovs.hv.sh("ovs-appctl tnl/neigh/show")]
    for f in ["in_port=1,dl_src=00:50:56:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.1.1.1,arp_tpa=10.1.1.12,arp_sha=00:50:56:00:00:01",
              "in_port=1,dl_src=00:50:56:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.1.1.1,arp_tpa=10.1.1.99,arp_sha=00:50:56:00:00:01",
              "in_port=1,dl_src=00:50:56:00:00:01,dl_dst=00:50:56:00:00:12,ip,nw_src=10.1.1.1,nw_dst=10.1.1.12",
              "in_port=1,dl_src=00:50:56:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,ip,nw_src=10.1.1.1,nw_dst=10.1.1.255",
              "in_port=10,tun_id=5001,tun_src=192.168.50.2,tun_dst=192.168.50.1,dl_src=00:50:56:00:00:12,dl_dst=ff:ff:ff:ff:ff:ff,ip",
              "in_port=10,tun_id=5003,dl_src=00:50:56:00:00:12,dl_dst=ff:ff:ff:ff:ff:ff,ip",
              "in_port=1,dl_src=00:50:56:00:00:01,dl_dst=00:50:56:00:00:03,ip",
              ]:
        out.append("=" * 30 + "\n" + f + "\n" + ovs.trace(f).text)
    open("/tmp/explore/out.txt", "w").write("\n".join(out))

def test_dpif(ovs):
    open("/tmp/explore/dpif.txt", "w").write(ovs.hv.sh("ovs-appctl dpif/show") + ovs.hv.sh("ovs-appctl ofproto/trace br-int 'in_port=99,ip'" + " 2>&1 || true"))
