"""The chat UI: `chat.SqlChat` (the logic: model, prompt, sandbox), `app` (Gradio around it) and `examples` (the
questions offered under the chat box).

chat and app receive an OpenAI-compatible client, the prompt templates and the sandbox from main.py's interact mode,
and never read configs or datasets; only examples reads the test split (through utils), for its first questions.
"""
