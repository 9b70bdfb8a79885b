"""Pulumi ComponentResources that make up a NINA stack; `platform.Platform` wires them together."""
