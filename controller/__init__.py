"""The packetwalk controller: os-ken apps over pure modules that return flow specs."""
