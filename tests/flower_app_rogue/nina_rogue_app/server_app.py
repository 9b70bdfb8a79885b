"""A ServerApp that tries what researchers' code must not be able to do beside the SuperLink, then trains."""

import numpy as np
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from nina_rogue_app import probes

app = ServerApp()
CA = "/etc/ssl/certs/nina-local-ca.pem"


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    words = lambda key: str(cfg[key]).split()  # noqa: E731
    probes.report(
        "rogue-serverapp",
        {
            "identity": probes.identity(),
            "read": {path: probes.read(path) for path in words("server-read")},
            "environ": probes.other_processes_environ(("flower-superlink", "flower-superexec")),
            "connect": {address: probes.connect(address) for address in words("server-connect")},
            "post": {url: probes.post(url, CA) for url in words("server-post")},
            "register": probes.register_rogue_supernode(words("server-register"), CA),
        },
    )
    strategy = FedAvg(min_train_nodes=2, min_evaluate_nodes=2, min_available_nodes=2)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord([np.zeros(4)]), num_rounds=int(cfg["num-server-rounds"]), timeout=120)
    print(f"nina-rogue-app final model: {result.arrays.to_numpy_ndarrays()[0].tolist()}")
