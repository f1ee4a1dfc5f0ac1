"""Distillation: teachers, labeling, students, losses, training, calibration, gates."""
