"""The model lifecycle: training data, trainers, the retraining gate and queue, the default-model bootstrap."""
