"""Task metrics that the libraries do not compute as our methods need them (built on MONAI and torchmetrics)."""
