import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _target(context: Context) -> np.ndarray:
    # Each partition pulls the model towards its own point, so the average is visible in the result.
    return np.full(4, float(context.node_config["partition-id"]) + 1.0)


@app.train()
def train(msg: Message, context: Context) -> Message:
    weights = msg.content["arrays"].to_numpy_ndarrays()[0]
    updated = weights + 0.5 * (_target(context) - weights)
    content = RecordDict({"arrays": ArrayRecord([updated]), "metrics": MetricRecord({"num-examples": 10})})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    weights = msg.content["arrays"].to_numpy_ndarrays()[0]
    loss = float(np.mean((weights - _target(context)) ** 2))
    return Message(content=RecordDict({"metrics": MetricRecord({"loss": loss, "num-examples": 10})}), reply_to=msg)
