"""mode: evaluate: the test split through an OpenAI-compatible endpoint, every answer judged in the SQL sandbox.

    uv run main.py --config configs/gretelai/synthetic_text_to_sql/evaluate_cpu.yaml [--eval_limit 20]

The model under test (`served_model_name` at `openai_api_base`) and, when `compare_model_name` is set,
a second one (say the base model, at `compare_api_base`) answer the same rows, prompted exactly as in
training, at temperature 0. With `eval_candidates: N` above 1 the answers are execution-guided: N-1 more
are sampled (vLLM's `n`, at `eval_temperature`), every candidate's SQL runs in the sandbox on the row's
schema, failures drop out, and the answer whose result most candidates share is judged (a tie goes to the
most likely: the greedy answer first). scoring.py judges each answer. The output folder gets results.json (every
row: answers, verdicts, reasons), summary.md (side-by-side tables) and accuracy.png (a bar chart).
"""

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from config import ConfigError, first_line
from endpoint import openai_client
from plots import write_accuracy_chart
from sandbox import SandboxError, default_sandbox
from scoring import judge, load_schema, prepare_gold, vote
from utils import add_formatted_sql, check_templates_fit, conversation, load_splits, load_templates

BREAKDOWNS = ("sql_complexity", "sql_task_type")  # row columns the metrics are broken down by, where present
REQUEST_TIMEOUT_S = 600  # one answer from a busy CPU server may take minutes
METRICS = {  # share in metrics(): (its name in the tables, the count it divides, by which count)
    "execution_accuracy": ("execution accuracy", "execution_correct", "gold_executable"),
    "test_suite_accuracy": ("test-suite accuracy", "test_suite_correct", "gold_executable"),
    "exact_match_rate": ("exact match", "exact_match", "rows"),
    "parse_rate": ("parses as SQL", "parses", "rows"),
    # With eval_candidates > 1, the ceiling execution-guided answers could reach: a row counts when any candidate is
    # test-suite-correct. With one candidate it is the test-suite accuracy.
    "any_candidate_accuracy": ("test-suite, any candidate", "any_candidate_correct", "gold_executable"),
}


@dataclass(frozen=True)
class Endpoint:
    api_base: str
    model: str
    label: str  # the model's column name in the reports
    settings: tuple[str, str]  # the config keys that name api_base and model, for error messages


@dataclass
class Answer:
    text: str
    error: str | None = None  # why the request failed
    candidates: list[str] = field(default_factory=list)  # execution-guided: every candidate, the greedy one first
    vote: str | None = None  # execution-guided: how the answer was chosen


def run_evaluation(extra):
    """Generate, judge and report; returns the output folder."""
    targets = endpoints(extra)
    for endpoint in targets:
        check_endpoint(endpoint)
    rows = load_test_rows(extra)
    templates = load_templates(extra.prompts_path)
    prompts = [conversation(row, templates)["prompt"] for row in rows]
    answers = {endpoint.label: generate(endpoint, prompts, extra.eval_max_tokens, extra.eval_concurrency,
                                        extra.eval_candidates, extra.eval_temperature)
               for endpoint in targets}
    if extra.eval_candidates > 1:
        answers = {label: execution_guided(rows, model_answers, default_sandbox()) for label, model_answers in answers.items()}
    records = judge_rows(rows, answers)
    labels = [endpoint.label for endpoint in targets]
    report = {"dataset": extra.dataset_name, "split": extra.dataset_test_split, "rows": len(records),
              "candidates": extra.eval_candidates,
              "models": [asdict(endpoint) for endpoint in targets], "metrics": summarise(records, labels)}
    output_dir = Path(extra.eval_output_dir or f"eval_output/{extra.served_model_name}")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps({**report, "examples": records}, indent=1, default=str))
    summary = summary_markdown(report, labels)
    (output_dir / "summary.md").write_text(summary)
    write_accuracy_chart(report["metrics"], labels, output_dir / "accuracy.png")
    print(summary)
    return output_dir


# ---------------------------------------------------------------- endpoints and generation


def endpoints(extra):
    """The model under test, then the one to compare it with (on the same server unless told otherwise)."""
    first = Endpoint(extra.openai_api_base, extra.served_model_name, extra.served_model_name,
                     ("openai_api_base", "served_model_name"))
    if not extra.compare_model_name:
        return [first]
    api_base = extra.compare_api_base or extra.openai_api_base
    second = Endpoint(api_base, extra.compare_model_name, extra.compare_model_name, ("compare_api_base", "compare_model_name"))
    if second.label == first.label:  # the same name on two servers: tell them apart by address
        first, second = (Endpoint(e.api_base, e.model, f"{e.model} ({e.api_base})", e.settings) for e in (first, second))
    return [first, second]


def check_endpoint(endpoint):
    """Fail in one line, before any work, when nobody answers at the address or the model is not served there."""
    from openai import OpenAIError

    base_key, model_key = endpoint.settings
    try:
        served = [model.id for model in openai_client(endpoint.api_base, max_retries=0, timeout=30).models.list()]
    except OpenAIError as error:
        raise ConfigError(f"{base_key}: no OpenAI-compatible server answers at {endpoint.api_base} ({first_line(error)}); "
                          "start one (e.g. `python serve_cpu.py CHECKPOINT`) or set OPENAI_API_BASE") from None
    if endpoint.model not in served:
        raise ConfigError(f"{model_key}: {endpoint.model!r} is not served at {endpoint.api_base} "
                          f"(it serves: {', '.join(served) or 'nothing'})")


def generate(endpoint, prompts, max_tokens, concurrency, candidates=1, temperature=0.8):
    """One Answer per prompt, in order: greedy, many requests in flight (the server batches them); with
    `candidates` above 1, also that many minus one sampled answers, in one request (vLLM's `n`).
    A failed request becomes an Answer with its error, so one bad row never stops the run."""
    from openai import OpenAIError

    api = openai_client(endpoint.api_base, timeout=REQUEST_TIMEOUT_S)

    def request(messages, **sampling):
        response = api.chat.completions.create(model=endpoint.model, messages=messages, max_tokens=max_tokens, **sampling)
        return [choice.message.content or "" for choice in response.choices]

    def ask(messages):
        try:
            [greedy] = request(messages, temperature=0)
        except OpenAIError as error:
            return Answer("", first_line(error))
        if candidates == 1:
            return Answer(greedy)
        try:
            sampled = request(messages, n=candidates - 1, temperature=temperature)
        except OpenAIError as error:  # the greedy answer is still a whole answer
            return Answer(greedy, vote=f"sampling failed ({first_line(error)}): the greedy answer stands")
        return Answer(greedy, candidates=[greedy, *sampled])

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(tqdm(pool.map(ask, prompts), total=len(prompts), desc=f"Generating ({endpoint.label})", unit="row"))


def execution_guided(rows, answers, sandbox):
    """Each answer that has candidates, replaced by the candidate whose SQL result (or end state) most candidates
    share on the row's schema (scoring.vote: candidates without SQL or whose SQL fails drop out; a tie goes to
    the earliest, so the greedy answer wins ties). Hostile or broken SQL ends as a sandbox error, never the run."""
    chosen = []
    for row, answer in zip(rows, tqdm(answers, desc="Voting", unit="row")):
        if not answer.candidates:
            chosen.append(answer)
            continue
        try:
            ballot = vote(answer.candidates, load_schema(row["sql_context"], sandbox), sandbox)
        except SandboxError as error:
            chosen.append(replace(answer, vote=f"the schema does not load ({error}): the greedy answer stands"))
            continue
        if ballot.winner is None:
            chosen.append(replace(answer, vote=f"none of the {len(answer.candidates)} candidates' SQL runs: "
                                               "the greedy answer stands"))
            continue
        which = "the greedy answer" if ballot.winner == 0 else f"sampled candidate {ballot.winner}"
        chosen.append(replace(answer, text=answer.candidates[ballot.winner],
                              vote=f"{which} won: {ballot.agreeing} of the {ballot.running} candidates whose SQL "
                                   f"runs ({len(answer.candidates)} asked) give its result"))
    return chosen


# ---------------------------------------------------------------- rows and verdicts


def load_test_rows(extra):
    """The test split, cut to eval_limit rows, with the formatted SQL columns the prompt templates use."""
    rows = load_splits(extra)["test"]
    missing = {"sql", "sql_context"} - set(rows.column_names)
    if missing:
        raise ConfigError(f"dataset_name: {extra.dataset_name} lacks column(s) {', '.join(sorted(missing))}, "
                          "which evaluation needs (gold SQL and schema)")
    if extra.eval_limit:
        rows = rows.select(range(min(extra.eval_limit, len(rows))))
    rows = rows.map(add_formatted_sql, desc="Formatting SQL")
    check_templates_fit(extra.prompts_path, rows.column_names, extra.dataset_name, names=("system", "user"))
    return rows


def judge_rows(rows, answers):
    """One record per row: the gold, whether it runs, and each model's answer with its verdict."""
    records = []
    for index, row in enumerate(tqdm(rows, desc="Judging", unit="row")):
        gold = prepare_gold(row["sql_context"], row["sql"])
        record = {key: row.get(key) for key in ("id", *BREAKDOWNS, "sql_prompt")}
        record.update(gold_sql=row["sql"], gold_executable=gold.error is None, gold_error=gold.error,
                      gold_as_run=gold.runnable, predictions={})
        for label, model_answers in answers.items():
            answer = model_answers[index]
            verdict = judge(gold, answer.text)
            others = [judge(gold, text) for text in answer.candidates if text != answer.text]
            if answer.error and verdict.execution_correct is not None:
                verdict.error = f"the request failed: {answer.error}"
            record["predictions"][label] = {"answer": answer.text, "request_error": answer.error,
                                            "candidates": answer.candidates, "vote": answer.vote, **asdict(verdict),
                                            "any_candidate_correct": any(v.test_suite_correct for v in [verdict, *others])}
        records.append(record)
    return records


# ---------------------------------------------------------------- metrics


def metrics(records, label):
    """Counts and shares for one model over some rows. Accuracies count only rows whose gold runs."""
    verdicts = [record["predictions"][label] for record in records]
    executable = sum(record["gold_executable"] for record in records)
    counts = {
        "rows": len(records),
        "gold_executable": executable,
        "execution_correct": sum(bool(v["execution_correct"]) for v in verdicts),
        "test_suite_correct": sum(bool(v["test_suite_correct"]) for v in verdicts),
        "exact_match": sum(v["exact_match"] for v in verdicts),
        "parses": sum(v["parses"] for v in verdicts),
        "any_candidate_correct": sum(v["any_candidate_correct"] for v in verdicts),
        "failed_requests": sum(v["request_error"] is not None for v in verdicts),
    }
    shares = {key: share(counts[part], counts[whole]) for key, (_, part, whole) in METRICS.items()}
    return {**counts, **shares, "gold_executable_rate": share(executable, len(records))}


def share(part, whole):
    return part / whole if whole else None


def summarise(records, labels):
    """{"overall": {label: metrics}, "by": {column: {value: {label: metrics}}}} for every breakdown column present."""
    by = {}
    for column in BREAKDOWNS:
        groups = sorted({record[column] for record in records if record[column] is not None})
        if groups:
            by[column] = {group: {label: metrics([r for r in records if r[column] == group], label) for label in labels}
                          for group in groups}
    return {"overall": {label: metrics(records, label) for label in labels}, "by": by}


# ---------------------------------------------------------------- reports


def percent(value, part=None, whole=None):
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" + (f" ({part}/{whole})" if whole is not None else "")


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def summary_markdown(report, labels):
    """The overall table, models side by side, then one table per breakdown column (a line per group and model)."""
    overall = report["metrics"]["overall"]
    first = overall[labels[0]]
    left_out = first["rows"] - first["gold_executable"]
    table = [[name] + [percent(overall[label][key], overall[label][part], overall[label][whole]) for label in labels]
             for key, (name, part, whole) in METRICS.items()]
    parts = [
        f"# Evaluation of {', '.join(f'`{label}`' for label in labels)}",
        f"Dataset `{report['dataset']}`, split `{report['split']}`, {report['rows']} rows. "
        f"The gold SQL runs on {first['gold_executable']} of them ({percent(first['gold_executable_rate'])})"
        + (f"; the other {left_out} are left out of execution and test-suite accuracy "
           "(see `gold_error` in results.json)." if left_out else "."),
        markdown_table(["metric", *labels], table),
    ]
    failed = {label: overall[label]["failed_requests"] for label in labels if overall[label]["failed_requests"]}
    if failed:  # a server that died mid-run must not pass for a bad model
        parts.append("**Requests failed** (those rows count as wrong; see `request_error` in results.json): "
                     + ", ".join(f"`{label}` {count} of {overall[label]['rows']}" for label, count in failed.items()) + ".")
    model_column = ["model"] if len(labels) > 1 else []
    for column, groups in report["metrics"]["by"].items():
        rows = [[group, *([label] if model_column else []), by_label[label]["rows"], by_label[label]["gold_executable"],
                 *(percent(by_label[label][key]) for key in METRICS)]
                for group, by_label in groups.items() for label in labels]
        header = [column, *model_column, "rows", "gold runs", *(name for name, _, _ in METRICS.values())]
        parts += [f"## By {column}", markdown_table(header, rows)]
    return "\n\n".join(parts) + "\n"

