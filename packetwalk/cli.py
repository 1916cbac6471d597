"""The `packetwalk` command."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

import packetwalk
from mininet_topos import interrupts

TOPOLOGIES = Path(__file__).resolve().parent.parent / "mininet_topos"
SEED = TOPOLOGIES / "seed.yaml"


def _fail(message: str, code: int = 2):
    click.echo(f"packetwalk: {message}", err=True)
    sys.exit(code)


def _require_root(what: str):
    if os.geteuid() != 0:
        _fail(f"{what} needs root (network namespaces and Open vSwitch): run it with sudo")


def _progress(message: str):
    click.echo(f"  .. {message}", err=True)


@click.group()
@click.version_option(packetwalk.__version__, prog_name="packetwalk")
def main():
    """packetwalk: an NSX-style network virtualization lab on real Open vSwitch."""


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def controller(args):
    """Run the controller: packetwalk's os-ken apps plus any APP_MODULEs given, until stopped.

    \b
    packetwalk controller [APP_MODULE ...] [--db-dir DIR | --nb tcp:A:P,tcp:B:P,...] [--state-file FILE]
                          [--ofp-listen-host HOST] [--ofp-tcp-listen-port PORT] [--verbose]
                          [--api-listen-host HOST] [--api-port PORT (0: no northbound API)]
      TLS:                [--ofp-ssl-listen-port PORT --ctl-privkey FILE --ctl-cert FILE --ca-certs FILE]
                          [--nb ssl:A:P,ssl:B:P,... --nb-ca-certs FILE [--nb-privkey FILE --nb-cert FILE]]
    """
    from controller import runtime
    sys.exit(runtime.run(list(args)))


@main.group()
def show():
    """The controller's tables, read through its northbound API (NSX controller CLI style).

    SWITCH is a logical switch's name or VNI. The API is the running lab's (lab.json), or --api.
    """


def _show_options(command):
    command = click.option("--api", metavar="URL", help="the controller's API (default: the running lab's)")(command)
    return click.option("--json", "as_json", is_flag=True, help="print the API's JSON")(command)


def _print_view(view: str, arg: str | None, as_json: bool, api: str | None):
    from packetwalk.show import ShowError, show as render
    try:
        click.echo(render(view, arg, as_json, api))
    except ShowError as e:
        _fail(str(e), 1)


@show.command("hypervisors")
@_show_options
def show_hypervisors(as_json, api):
    """Hypervisors: VTEP IP, OpenFlow/OVSDB connected, ports, flows."""
    _print_view("hypervisors", None, as_json, api)


@show.command("vteps")
@click.argument("switch")
@_show_options
def show_vteps(switch, as_json, api):
    """The VTEP table of a logical switch: the hypervisors that host it."""
    _print_view("vteps", switch, as_json, api)


@show.command("mac-table")
@click.argument("switch")
@_show_options
def show_mac_table(switch, as_json, api):
    """The MAC table of a logical switch: MAC -> VM, hypervisor, VTEP, port."""
    _print_view("mac-table", switch, as_json, api)


@show.command("arp-table")
@click.argument("switch")
@_show_options
def show_arp_table(switch, as_json, api):
    """The ARP table of a logical switch: IP -> MAC, and where each binding came from."""
    _print_view("arp-table", switch, as_json, api)


@show.command("routers")
@_show_options
def show_routers(as_json, api):
    """Logical routers: their LIFs (gateway IP per switch) and static routes."""
    _print_view("routers", None, as_json, api)


@show.command("port-security")
@_show_options
def show_port_security(as_json, api):
    """Frames each VM port sent that port security dropped at its hypervisor, per cause."""
    _print_view("port-security", None, as_json, api)


@show.command("tunnels")
@click.argument("hv")
@_show_options
def show_tunnels(hv, as_json, api):
    """A hypervisor's VXLAN tunnels: remote VTEPs, ofports, BFD state."""
    _print_view("tunnels", hv, as_json, api)


@main.group(invoke_without_command=True)
@click.option("--topology", "-t", "topology_file", default=str(SEED), show_default=True,
              help="topology YAML file")
@click.option("--test", "tests", default=None, metavar="NAME[,NAME...]",
              help="run these checks without a CLI, tear down, exit non-zero on any failure")
@click.option("--json", "as_json", is_flag=True, help="with --test: print one JSON object")
@click.option("--verbose", "-v", is_flag=True, help="show Mininet's own messages")
@click.option("--nb-cluster", type=click.IntRange(0, 7), default=None, metavar="N",
              help="the controller's database as an N-member Raft cluster, each member in its own "
                   "namespace (default: the controller's embedded database; 3 when --test has nb-cluster)")
@click.option("--ssl", "use_ssl", is_flag=True,
              help="OpenFlow and every hypervisor's OVSDB over SSL, with the lab's own CAs and certificates")
@click.option("--controllers", type=click.IntRange(0, 7), default=0, metavar="N",
              help="N controllers, each in its own namespace, sharing the database (needs --nb-cluster; "
                   "default: one controller in the root namespace)")
@click.pass_context
def lab(ctx, topology_file, tests, as_json, verbose, nb_cluster, use_ssl, controllers):
    """Start the controller and the emulated network, and give the Mininet CLI."""
    if ctx.invoked_subcommand:
        return
    from mininet_topos.checks import CHECKS, run_checks
    from mininet_topos.lab import Lab, LabError
    from mininet_topos.topology import TopologyError, load_topology

    try:
        topo = load_topology(topology_file)
    except TopologyError as e:
        _fail(str(e))
    names = [n.strip() for n in tests.split(",") if n.strip()] if tests else []
    unknown = [n for n in names if n not in CHECKS]
    if unknown or (tests is not None and not names):
        _fail(f"--test: unknown check {', '.join(unknown) or repr(tests)}; known: {', '.join(sorted(CHECKS))}")
    from mininet_topos.capacity import Machine, too_large
    reason = too_large(topo, Machine.here())
    if reason:
        _fail(f"{topology_file}: too large for this machine: {reason}")
    _require_root("packetwalk lab")
    if nb_cluster is None:
        nb_cluster = 3 if "nb-cluster" in names or controllers else 0
    if controllers and not nb_cluster:
        _fail("--controllers needs the database as a cluster they share: add --nb-cluster 3")
    interrupts.install()
    try:
        with Lab(topo, progress=_progress, verbose=verbose, nb_cluster=nb_cluster, ssl=use_ssl,
                 controllers=controllers) as running:
            if not names:
                from mininet.log import setLogLevel
                from packetwalk import mininet_cli
                setLogLevel("output")           # the CLI prints command output at this level
                click.echo(f"*** {topo.name} is up. Try: {_hint(topo)}", err=True)
                mininet_cli.run(running.net, running.rundir)
                return
            _progress(f"running checks: {', '.join(names)}")
            result = run_checks(running, names)
    except LabError as e:
        _fail(str(e), 1)
    except (interrupts.Interrupted, KeyboardInterrupt) as e:
        _interrupted(e)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for name, r in result["checks"].items():
            click.echo(f"{name}: {'PASS' if r['ok'] else 'FAIL'}")
            click.echo(json.dumps({k: v for k, v in r.items() if k != 'ok'}, indent=2))
    sys.exit(0 if result["ok"] else 1)


def _interrupted(e: BaseException):
    """A SIGINT or SIGTERM: the lab is already torn down (Lab.stop finished first)."""
    code = e.exit_code if isinstance(e, interrupts.Interrupted) else 130
    _fail(f"{e if isinstance(e, interrupts.Interrupted) else 'interrupted by SIGINT'}: "
          "the lab was stopped and nothing is left running", code)


def _hint(topo) -> str:
    hv = topo.hypervisors[0].name
    hint = f"`{hv} ovs-ofctl dump-flows br-int`, `{hv} ovs-vsctl show`"
    if len(topo.vms) >= 2:
        a, b = topo.vms[0].name, topo.vms[-1].name
        hint += f", `{a} ping {b}`, `walk {a} {b}`"
    return hint + "; `help` lists packetwalk's commands"


@lab.command("clean")
def lab_clean():
    """Remove what a crashed lab left behind: its processes (by pid), namespaces and links."""
    from mininet_topos.cleanup import clean
    from mininet_topos.lab import RUNDIR
    _require_root("packetwalk lab clean")
    done = clean(RUNDIR)
    for line in done:
        click.echo(line)
    click.echo("nothing to clean" if not done else f"cleaned {len(done)} items")



@main.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--api", default=None, metavar="URL", help="the controller's API (default: the running lab's)")
@click.option("--json", "as_json", is_flag=True, help="print what changed as JSON")
def apply_cmd(file, api, as_json):
    """Make the controller's intent match FILE's logical part (a lab topology or an intent
    file): print what was created, changed and deleted. Applying it twice changes nothing."""
    from packetwalk.apply import ApplyError, apply, read_intent
    from packetwalk.show import api_url
    try:
        summary = apply(api_url(api), read_intent(file), file)
    except ApplyError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for what in ("created", "changed", "deleted"):
        for item in summary[what]:
            click.echo(f"{what}: {item}")
    if not any(summary.values()):
        click.echo("nothing to change: the controller's intent already matches " + file)


@main.command()
@click.argument("hv")
@click.option("--table", default=None, metavar="NAME", help="one table, by name (l2_lookup) or number")
@click.option("--owner", default=None, metavar="OBJ",
              help="one object's flows: port:vm1, vm1 (any kind) or a kind (port, vtep, binding, lif, ...)")
@click.option("--json", "as_json", is_flag=True, help="print the rows as JSON")
@click.option("--api", metavar="URL", help="the controller's API (default: the running lab's)")
def flows(hv, table, owner, as_json, api):
    """A hypervisor's br-int table by table, as `ovs-ofctl --names dump-flows` shows it, each
    flow with its table's purpose and the object the controller made it for (from its cookie)."""
    from mininet_topos.lab import LAB_FILE, RUNDIR
    from packetwalk import flows as flows_mod
    from packetwalk.show import ShowError, api_url, get
    try:
        flows_mod.select([], table=table)             # a bad --table is refused before anything runs
        _require_root("packetwalk flows")
        if not (RUNDIR / LAB_FILE).exists():
            _fail("no lab is running (start one with `packetwalk lab`)", 1)
        dump = flows_mod.dump_flows(RUNDIR, hv)
        owned = get(api_url(api), f"/v1/hypervisors/{hv}/flows")["flows"]
        rows = flows_mod.select(flows_mod.annotate(dump, owned), table=table, owner=owner)
    except (flows_mod.FlowsError, ShowError) as e:
        _fail(str(e), 1)
    if as_json:
        import dataclasses
        click.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    else:
        click.echo(flows_mod.text(hv, rows))


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option("--proto", default="icmp", show_default=True, metavar="icmp|arp|udp:PORT|tcp:PORT")
@click.option("--json", "as_json", is_flag=True, help="print the walk as JSON")
def trace(src, dst, proto, as_json):
    """Walk a packet from VM SRC to VM DST through the running lab's real flows."""
    from mininet_topos.topology import TopologyError
    from packetwalk.trace import RunningLab, WalkError, walk
    _require_root("packetwalk trace")
    try:
        result = walk(RunningLab(), src, dst, proto)
    except (WalkError, TopologyError) as e:
        _fail(str(e), 1)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.text())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object with every check's result")
@click.option("--keep", is_flag=True, help="leave the overlay lab running at the Mininet CLI")
@click.option("--out", "out_dir", default="packetwalk-demo", show_default=True,
              help="directory for the packet walks' pictures (SVG)")
def demo(as_json, keep, out_dir):
    """The seed for real: physical baseline vs NSX-style overlay, pings, walks, tables."""
    from mininet_topos.lab import LabError
    from packetwalk import demo as demo_mod
    _require_root("packetwalk demo")
    interrupts.install()
    try:
        result = demo_mod.run(_progress, Path(out_dir), keep=keep)
    except LabError as e:
        _fail(str(e), 1)
    except (interrupts.Interrupted, KeyboardInterrupt) as e:
        _interrupted(e)
    click.echo(demo_mod.as_json(result) if as_json else demo_mod.report(result))
    lab_kept = result.get("kept")
    if lab_kept:
        from mininet.log import setLogLevel
        from packetwalk import mininet_cli
        setLogLevel("output")
        try:
            mininet_cli.run(lab_kept.net, lab_kept.rundir)
        finally:
            lab_kept.stop()
    sys.exit(0 if result["ok"] else 1)


@main.command()
@click.argument("scenarios", nargs=-1, metavar="[SCENARIO ...]")
@click.option("--quick", is_flag=True, help="small sizes, fast (CI runs this for correctness, never for time)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--plot", "plot_dir", default=None, metavar="DIR", help="write PNG plots of the figures here")
@click.option("--max-hypervisors", type=click.IntRange(1), default=None, metavar="N",
              help="the scale scenarios' sizes up to N hypervisors (default: all, up to 200)")
def bench(scenarios, quick, as_json, plot_dir, max_hypervisors):
    """Measure the seed's claims and the controller's cost beside their baselines and targets.

    SCENARIO: one or more of underlay-table, underlay-arp, routing-path, convergence,
    flow-footprint, lab-start, scale, scale-cluster, throughput (default: all). A bench measures; it never
    fails on a time: the exit code is non-zero only if a scenario could not produce its figures.
    """
    from mininet_topos.lab import LabError
    import packetwalk.bench
    from packetwalk.bench import SCENARIOS, report
    packetwalk.bench.MAX_HYPERVISORS = max_hypervisors
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        _fail(f"bench: unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    _require_root("packetwalk bench")
    interrupts.install()         # SIGINT/SIGTERM: its labs stop (mininet_topos/interrupts.py), then exit
    try:
        result = report.run(list(scenarios) or list(SCENARIOS), quick, _progress)
    except LabError as e:
        _fail(str(e), 1)
    except (interrupts.Interrupted, KeyboardInterrupt) as e:
        _fail(str(e) or "interrupted by SIGINT", e.exit_code if isinstance(e, interrupts.Interrupted) else 130)
    if plot_dir:
        from packetwalk.bench import plots
        result["plots"] = [str(p) for p in plots.write(result, Path(plot_dir))]
        _progress(f"plots: {', '.join(result['plots']) or 'none (no figures to draw)'}")
    click.echo(json.dumps({k: v for k, v in result.items()}, indent=2) if as_json else report.text(result))
    sys.exit(0 if result["ok"] else 1)


@main.command()
@click.option("--topology", "-t", "topology_file", default=None, help="topology YAML (default: the running lab's)")
@click.option("--walk", nargs=2, metavar="SRC DST", default=None, help="draw this packet walk (needs a running lab)")
@click.option("--proto", default="icmp", show_default=True)
@click.option("-o", "out", required=True, help="output file, .svg or .png")
def diagram(topology_file, walk, proto, out):
    """Draw hypervisors, VTEPs, VMs, logical switches and routers, and a packet's path."""
    from mininet_topos.topology import TopologyError, load_topology
    from packetwalk.diagram import render
    from packetwalk.trace import RunningLab, WalkError, walk as do_walk
    try:
        path, placement, title = None, None, None
        if walk or not topology_file:
            if walk:
                _require_root("packetwalk diagram --walk")
            running = RunningLab()
            topo, placement = running.topo, running.placement
            if walk:
                w = do_walk(running, walk[0], walk[1], proto)
                path = w.path
                title = f"{topo.name}: {w.src} -> {w.dst} ({w.proto}): {w.verdict}"
        if topology_file:
            topo = load_topology(topology_file)
        written = render(topo, out, path=path, placement=placement, title=title)
    except (WalkError, TopologyError, ValueError) as e:
        _fail(str(e), 1)
    click.echo(f"wrote {written}")


if __name__ == "__main__":
    main()
