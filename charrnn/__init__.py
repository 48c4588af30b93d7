"""charrnn: a character-level stacked vanilla RNN, trained with backpropagation through time in NumPy."""

__version__ = "0.1.0"
