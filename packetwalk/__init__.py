"""packetwalk: an NSX-style network virtualization controller and its emulated lab."""
__version__ = "0.1.0"
