"""The trainer: data, model, training loop, evaluation, metrics and the store writer."""

import warnings

# torch warns at import when NumPy is missing; the trainer never uses NumPy
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
