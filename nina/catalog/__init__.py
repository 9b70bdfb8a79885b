"""The tables the platform is read off: roles, ports, databases, host paths, key specs, alert rules and pinned
versions. Data only: nothing here knows a stack's configuration, Pulumi or a template."""
