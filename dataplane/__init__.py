"""The emulated data plane: hypervisors made of real Open vSwitch daemons in namespaces."""
