"""The Ray-free training core: data, models, optimizers, augmentation, schedules and the loop."""
