"""A ClientApp that tries what researchers' code must not be able to do beside a SuperNode, then trains."""

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from nina_rogue_app import probes

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg = context.run_config
    partition = int(context.node_config["partition-id"])
    probes.report(
        f"rogue-clientapp-{partition}",
        {
            "identity": probes.identity(),
            "read": {path: probes.read(path) for path in str(cfg["client-read"]).split()},
            "environ": probes.other_processes_environ(("flower-supernode", "flower-superexec")),
            "connect": {address: probes.connect(address) for address in str(cfg["client-connect"]).split()},
            "unix": {path: probes.connect_unix(path) for path in str(cfg["client-unix"]).split()},
        },
    )
    weights = msg.content["arrays"].to_numpy_ndarrays()[0]
    updated = weights + 0.5 * (np.full(4, partition + 1.0) - weights)
    return Message(content=RecordDict({"arrays": ArrayRecord([updated]), "metrics": MetricRecord({"num-examples": 10})}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    return Message(content=RecordDict({"metrics": MetricRecord({"loss": 0.0, "num-examples": 10})}), reply_to=msg)
