"""NumPy FedAvg: each SuperNode moves the model towards its partition's target; the server averages."""
