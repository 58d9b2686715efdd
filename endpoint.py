"""The client for an OpenAI-compatible server (vLLM, serve_cpu.py) that evaluate and interact talk to."""

import os


def openai_client(api_base, **options):
    """A client for api_base: the key from OPENAI_API_KEY (shell or .env), else EMPTY (vLLM asks for none)."""
    from openai import OpenAI

    return OpenAI(base_url=api_base, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"), **options)
