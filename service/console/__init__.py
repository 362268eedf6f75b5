"""The client half of the `needle-service` command line: submit and follow jobs, list, show,
cancel and delete them, download parameters, predict, evaluate, and manage datasets -- all over HTTP
through service.client.

Exit status: 0 success (a followed job succeeded); 1 a followed job failed, or the server
refused or could not be reached; 2 usage error (bad arguments, an unreadable file, a spec or
request the server rejects as invalid); 3 a followed job was cancelled (or pruned by its sweep).
A followed sweep exits 0 when it succeeded, 1 when no trial succeeded, 3 when cancelled."""
from .commands import add_client_commands as _add_job_commands
from .sweeps import add_sweep_commands

EXIT_STATUS = """exit status of the client commands: 0 success (a followed job succeeded); 1 a
followed job failed, or the server refused the request or could not be reached; 2 usage error
(bad arguments, an unreadable file, a spec the server rejects as invalid); 3 a followed job
was cancelled (or, as a sweep trial, pruned); a followed sweep: 0 succeeded, 1 failed, 3 cancelled.
Every client command takes --url (env NEEDLE_URL, default
http://127.0.0.1:8000), --api-key (env NEEDLE_API_KEY) and --json."""



def add_client_commands(commands) -> None:
    """Register every client command (jobs, parameters, predictions, evaluations, datasets,
    sweeps)."""
    _add_job_commands(commands)
    add_sweep_commands(commands)


__all__ = ["EXIT_STATUS", "add_client_commands"]
