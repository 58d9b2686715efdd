"""The chat's logic, without Gradio: a question and a schema in; the streamed answer, then its SQL's result, out.

Each question goes to the model alone, as one system + one user turn rendered by the training templates:
the model never saw a longer conversation, so earlier turns would only confuse it. Every fault (server
down, unknown model, schema that does not load, answer without SQL, SQL that fails or runs too long)
ends the turn with a message in the chat; the next turn starts afresh.
"""

from openai import APIConnectionError, NotFoundError, OpenAIError

from sandbox import Job, SandboxError
from scoring import extract_sql, load_schema, run_sql, vote
from utils import add_formatted_sql, conversation

START_SERVER_HELP = ("start one (`uv run python serve_cpu.py CHECKPOINT` on a CPU, `uv run vllm serve CHECKPOINT "
                     "--served-model-name local --port 8080` on a GPU) or point openai_api_base at it")


def chat_row(question, schema):
    """A dataset row holding what the chat knows, with the SQL formatting training applied. It has no gold
    SQL: `sql` is empty only so the assistant template renders; that part of the conversation is not sent."""
    row = {"sql_prompt": question, "sql_context": schema, "sql": ""}
    return {**row, **add_formatted_sql(row)}


class SqlChat:
    """Answers questions with the model at `client` (an openai.OpenAI) and runs each answer's SQL in `sandbox`
    (a sandbox.Sandbox: worker processes) on a fresh database built from the user's schema."""

    def __init__(self, client, model, templates, sandbox, max_tokens=256, query_timeout_s=2.0, max_rows=100,
                 candidates=1, temperature=0.8):
        self.client = client
        self.candidates = candidates  # > 1: execution-guided answers (see pick_by_execution)
        self.temperature = temperature
        self.model = model
        self.templates = templates
        self.sandbox = sandbox
        self.max_tokens = max_tokens
        self.query_timeout_s = query_timeout_s
        self.max_rows = max_rows

    def prompt(self, question, schema):
        return conversation(chat_row(question, schema), self.templates)["prompt"]

    def reply(self, question, schema):
        """Yield (text, result) pairs: the answer as it grows (result None), then the whole answer with a note
        on its SQL, and the sandbox's QueryResult when the SQL ran. Closing the generator (the UI's stop
        button) closes the HTTP request, which vLLM takes as an abort."""
        if not question.strip():
            yield "Type a question about the schema in the box below.", None
            return
        try:
            statements = load_schema(schema, self.sandbox, self.query_timeout_s)
        except SandboxError as error:
            # Checked before asking the model: an answer about a schema we cannot load could not be run anyway.
            yield f"The schema does not load: {error}. Fix it in the schema box and ask again.", None
            return
        messages = self.prompt(question, schema)
        answer, finish_reason, fault = yield from self.stream_answer(messages)
        if fault:
            yield with_note(answer, fault), None
            return
        notes = []
        if finish_reason == "length":
            notes.append(f"The answer reached the {self.max_tokens}-token limit and was cut off.")
        if self.candidates > 1:
            answer, vote_note = self.pick_by_execution(messages, answer, statements)
            notes.append(vote_note)
        note, result = self.run_sql(answer, statements)
        yield with_note(answer, "\n\n".join([*notes, note])), result

    def pick_by_execution(self, messages, greedy, schema):
        """(answer, note): the greedy answer and `candidates - 1` sampled ones vote by the result of their SQL
        (scoring.vote); the answer most of them agree with replaces the greedy one."""
        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=messages, n=self.candidates - 1, temperature=self.temperature,
                max_tokens=self.max_tokens)
        except OpenAIError as error:
            return greedy, f"Execution-guided answer skipped: sampling more candidates failed ({server_detail(error)})."
        answers = [greedy, *(choice.message.content or "" for choice in response.choices)]
        ballot = vote(answers, schema, self.sandbox, self.query_timeout_s)
        if ballot.winner is None:
            return greedy, f"Execution-guided: none of the {len(answers)} candidates' SQL runs."
        which = "the first (greedy) answer" if ballot.winner == 0 else f"sampled candidate {ballot.winner}"
        return answers[ballot.winner], (f"Execution-guided: {which} won; {ballot.agreeing} of {ballot.running} "
                                         f"candidates whose SQL runs ({len(answers)} asked) give its result.")

    def stream_answer(self, messages):
        """Yield (answer so far, None) per streamed piece; return (answer, finish_reason, fault message or None)."""
        answer, finish_reason = "", None
        try:
            stream = self.client.chat.completions.create(
                model=self.model, messages=messages, stream=True, temperature=0, max_tokens=self.max_tokens)
            with stream:  # leaving it early (stop, or an error) closes the connection: vLLM then aborts the request
                for chunk in stream:
                    if not chunk.choices:
                        continue
                    answer += chunk.choices[0].delta.content or ""
                    finish_reason = chunk.choices[0].finish_reason or finish_reason
                    yield answer, None
        except OpenAIError as error:
            return answer, finish_reason, self.model_fault(error)
        return answer, finish_reason, None

    def model_fault(self, error):
        """The request's failure in words, with what to do about it."""
        where = str(self.client.base_url).rstrip("/")
        if isinstance(error, APIConnectionError):
            cause = f" ({error.__cause__})" if error.__cause__ else ""
            return f"No model server answers at {where}{cause}: {START_SERVER_HELP}."
        if isinstance(error, NotFoundError):
            return (f"The server at {where} has no model named {self.model!r} ({server_detail(error)}). "
                    "Set served_model_name in the config to the name it serves.")
        return f"The model server refused the request: {server_detail(error)}"

    def run_sql(self, answer, schema):
        """(note, QueryResult or None) for the SQL in the answer, run on a fresh copy of the user's schema
        (its statements as load_schema gives them)."""
        sql = extract_sql(answer)
        if sql is None:
            return "The answer holds no SQL, so there is nothing to run.", None
        job = Job(schema, timeout_s=self.query_timeout_s, max_rows=self.max_rows)
        try:
            result = run_sql(self.sandbox, job, sql)[0].results[0]
        except SandboxError as error:
            return f"The SQL did not run: {error}.", None
        return result_note(result, self.max_rows), result


def result_note(result, max_rows):
    if not result.columns:  # INSERT, UPDATE, DELETE ...: they ran on a throwaway copy of the schema
        return "The statement ran on a throwaway copy of the schema; it returns no rows."
    if result.truncated:
        return f"The query returned more than {max_rows} rows; the first {max_rows} are in the table below."
    rows = f"{len(result.rows)} row" + ("" if len(result.rows) == 1 else "s")
    return f"Result: {rows}, in the table below."


def with_note(answer, note):
    if not answer.strip():
        return note
    if answer.count("```") % 2:  # a code block the answer left open (cut off) would swallow the note
        answer += "\n```"
    return f"{answer}\n\n{note}"


def server_detail(error):
    """The server's own words, without the client's "Error code: 404 - " prefix."""
    return getattr(error, "message", str(error)).split(" - ", 1)[-1]
