"""cloud-init: templates per role and the renderer that turns a host's roles into one cloud-config."""
