"""The chat UI: `chat.SqlChat` (the logic: model, prompt, sandbox) and `app` (Gradio around it).

It receives an OpenAI-compatible client, the prompt templates and the sandbox from main.py's interact mode,
and never reads configs or datasets itself.
"""
