"""fmnist-ray: Fashion-MNIST training studies as Ray Tune sweeps."""

__version__ = "0.1.0"
