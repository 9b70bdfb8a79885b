"""nina-fl's Python package, one layer per folder (README "Architecture"):

- `catalog/`: the tables (roles, ports, databases, paths, key specs, alert rules, versions);
- `config/`: the typed stack configuration and its validation;
- `plan/`: pure functions from the configuration to data and text;
- `offline/`: the Pulumi mocks and the evaluation behind `nina preview`;
- `bundle/`: an on-premises site's kit;
- `cli/`: the `nina` command;
- `onhost/`: the standard-library programs the VMs run (nina-deliver, nina-check).

`cloudinit/` renders user-data from `plan/` and `catalog/`; `components/` turns it all into Pulumi resources. The
import contracts in pyproject.toml keep each layer from importing the ones above it.
"""
