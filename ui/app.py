"""The Gradio app: a schema box, a chat whose question box asks the model, and a table with the result of
the SQL in the model's answer.

gr.ChatInterface gives the stop, retry, undo, edit and clear controls; SqlChat (chat.py) does the work.
"""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before Gradio loads: no telemetry, no version look-up

import gradio as gr

INTRO = ("Ask a question about a database: put its schema (CREATE TABLE and INSERT statements) in the box, type "
         "the question below. The model's SQL then runs on a throwaway in-memory SQLite copy of that schema.")


def build_app(chat, examples=()):
    """The Blocks app for `chat` (a SqlChat); `examples` are (question, schema) pairs listed under the result."""
    with gr.Blocks(title="sqltune") as app:
        gr.Markdown(f"## sqltune: chat with a text-to-SQL model\n{INTRO}")
        schema = gr.Textbox(label="Schema", lines=5, max_lines=12, elem_id="schema",
                            placeholder="CREATE TABLE t (id INT, name VARCHAR(50)); INSERT INTO t VALUES (1, 'a');")
        question = gr.Textbox(label="Question", elem_id="msg", placeholder="Ask a question about the schema",
                              submit_btn=True, stop_btn=True, render=False)
        # Created before the chat, which needs it as an output; rendered right under it.
        table = gr.Dataframe(label="Result of the answer's SQL", elem_id="table", interactive=False,
                             visible=False, render=False)

        def respond(question_text, history, schema_sql):  # history is not sent: see chat.py
            yield from table_updates(chat.reply(question_text, schema_sql))

        interface = gr.ChatInterface(
            fn=respond,
            chatbot=gr.Chatbot(elem_id="chat", label="Chat", buttons=["copy"], height=420),
            textbox=question,
            additional_inputs=[schema],
            additional_outputs=[table],
            editable=True,
            fill_height=False,
        )
        table.render()
        interface.chatbot.clear(lambda: gr.Dataframe(value=None, visible=False), outputs=table)
        # Here rather than ChatInterface's own examples, which would come between the chat and its result.
        if examples:
            gr.Examples([list(example) for example in examples], inputs=[question, schema])
    return app


def table_updates(replies):
    """SqlChat's (text, result) pairs as ChatInterface wants them: (message, table update)."""
    for text, result in replies:
        if result is None or not result.columns:
            yield text, gr.Dataframe(value=None, visible=False)
        else:
            yield text, gr.Dataframe(value={"headers": result.columns, "data": result.rows}, visible=True)


def launch(chat, examples=(), port=7860, share=False):
    """Serve the app on 127.0.0.1 (or GRADIO_SERVER_NAME) at `port` until interrupted; a public gradio.live link
    only with `share`."""
    build_app(chat, examples).launch(server_port=port, share=share, theme=gr.themes.Soft())
