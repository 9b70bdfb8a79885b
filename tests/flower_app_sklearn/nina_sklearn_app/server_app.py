import numpy as np
import sklearn
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from nina_sklearn_app.task import FEATURES, dataset, model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    strategy = FedAvg(min_train_nodes=2, min_evaluate_nodes=2, min_available_nodes=2)
    initial = ArrayRecord([np.zeros(FEATURES), np.zeros(1)])
    result = strategy.start(grid=grid, initial_arrays=initial, num_rounds=int(context.run_config["num-server-rounds"]), timeout=120)
    # Scored here too: the ServerApp needs scikit-learn as much as the ClientApps do.
    x, y = dataset()
    accuracy = model(result.arrays.to_numpy_ndarrays()).score(x, y)
    print(f"nina-sklearn-app scikit-learn {sklearn.__version__} accuracy: {accuracy:.3f}")
