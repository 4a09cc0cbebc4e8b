"""Config groups this plugin adds to attnbench (found through the `attnbench.conf` entry point)."""
