from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from nina_sklearn_app.task import model, parameters, partition

app = ClientApp()


def _data(context: Context):
    return partition(int(context.node_config["partition-id"]), int(context.node_config["num-partitions"]))


@app.train()
def train(msg: Message, context: Context) -> Message:
    x, y = _data(context)
    clf = model(msg.content["arrays"].to_numpy_ndarrays(), seed=int(context.node_config["partition-id"]))
    for _ in range(int(context.run_config["local-epochs"])):
        clf.partial_fit(x, y)
    content = RecordDict({"arrays": ArrayRecord(parameters(clf)), "metrics": MetricRecord({"num-examples": len(y)})})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    x, y = _data(context)
    accuracy = float(model(msg.content["arrays"].to_numpy_ndarrays()).score(x, y))
    return Message(content=RecordDict({"metrics": MetricRecord({"accuracy": accuracy, "num-examples": len(y)})}), reply_to=msg)
