"""The shared training pieces: reference energies, losses, schedules, metrics, the loop."""
