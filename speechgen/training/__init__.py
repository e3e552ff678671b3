"""Training machinery: callbacks, schedules, distribution, optimizer, TensorBoard."""
