"""Trained models as deployable files, and the images `predict` reads."""
