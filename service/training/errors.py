"""The one exception type whose message a failed job shows to its client."""


class TrainingError(Exception):
    """A job cannot train (bad data, missing files, diverged loss); str(error) is the job's error."""
