"""mode: evaluate: rows and prompts, verdicts into metrics and reports, one-line errors for a missing
server or model, and the whole run end to end against a REAL vLLM CPU server on a tiny random Gemma 3."""

import json

import pytest
from conftest import ROOT, SHIPPED_DATA, free_port, run_main, shipped_rows

import main
from evaluation import (Answer, endpoints, execution_guided, judge_rows, load_test_rows, summarise, summary_markdown,
                        write_accuracy_chart)
from sandbox import default_sandbox
from tests.vllm_server import start_vllm_server
from config import DEFAULT_OPENAI_API_BASE, ConfigError, ExtraConfig

EVALUATE_CONFIG = ROOT / "configs" / "gretelai" / "synthetic_text_to_sql" / "evaluate_cpu.yaml"
PROMPTS = str(ROOT / "prompts" / "gretelai" / "synthetic_text_to_sql")
BROKEN_GOLD = {"id": 0, "sql_complexity": "basic SQL", "sql_task_type": "data retrieval", "sql_prompt": "?",
               "sql_context": "CREATE TABLE t (a INT)", "sql": "SELECT b FROM t"}


def evaluate_config(**fields):
    return ExtraConfig(mode="evaluate", dataset_name=str(SHIPPED_DATA), prompts_path=PROMPTS, **fields)


def run_in_process(capsys, *args):
    """main.main as `uv run main.py --config evaluate_cpu.yaml ARGS` runs it: (exit code, stdout, stderr)."""
    try:
        main.main(["--config", str(EVALUATE_CONFIG), *map(str, args)])
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- rows, prompts and settings -----------------------------------------------------------------


def test_test_rows_are_cut_to_eval_limit_and_formatted_for_the_prompts():
    rows = load_test_rows(evaluate_config(eval_limit=5))
    assert len(rows) == 5
    assert rows[0]["sql"] == shipped_rows("test")[0]["sql"]
    assert rows[0]["new_sql_context"].startswith("```sql\nCREATE TABLE")


def test_a_dataset_without_gold_sql_is_refused(tmp_path):
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps({"sql_prompt": "q", "sql_context": "CREATE TABLE t (a INT)"}) + "\n")
    with pytest.raises(ConfigError, match="lacks column\\(s\\) sql,"):
        load_test_rows(ExtraConfig(mode="evaluate", dataset_name=str(tmp_path), prompts_path=PROMPTS))


def test_endpoint_settings_come_from_config_then_environment_then_default(monkeypatch):
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert evaluate_config().openai_api_base == DEFAULT_OPENAI_API_BASE
    monkeypatch.setenv("OPENAI_API_BASE", "http://gpu-box:8000/v1")
    assert evaluate_config().openai_api_base == "http://gpu-box:8000/v1"
    assert evaluate_config(openai_api_base="http://other:1/v1").openai_api_base == "http://other:1/v1"
    with pytest.raises(ConfigError, match="eval_limit: must be at least 1"):
        evaluate_config(eval_limit=0)


def test_a_comparison_names_each_model_and_tells_same_names_apart_by_address():
    one = endpoints(evaluate_config(openai_api_base="http://a:1/v1"))
    assert [(e.api_base, e.model, e.label) for e in one] == [("http://a:1/v1", "local", "local")]
    two = endpoints(evaluate_config(openai_api_base="http://a:1/v1", compare_model_name="base"))
    assert [(e.api_base, e.label) for e in two] == [("http://a:1/v1", "local"), ("http://a:1/v1", "base")]
    same_name = endpoints(evaluate_config(openai_api_base="http://a:1/v1", compare_api_base="http://b:2/v1",
                                          compare_model_name="local"))
    assert [e.label for e in same_name] == ["local (http://a:1/v1)", "local (http://b:2/v1)"]


# --- verdicts into metrics and reports ----------------------------------------------------------


def test_metrics_and_reports_from_judged_rows(tmp_path):
    rows = shipped_rows("test")[:12] + [BROKEN_GOLD]
    answers = {
        "local": [Answer(f"```sql\n{row['sql']}\n```" if index % 2 == 0 else "SELECT 1") for index, row in enumerate(rows)],
        "base": [Answer("I cannot help with that.")] * len(rows),
    }
    records = judge_rows(rows, answers)
    summary = summarise(records, ["local", "base"])

    local, base = summary["overall"]["local"], summary["overall"]["base"]
    assert (local["rows"], local["gold_executable"]) == (13, 12)  # the broken gold is counted apart
    assert (local["execution_correct"], local["test_suite_correct"], local["exact_match"]) == (6, 6, 7)
    assert local["execution_accuracy"] == local["test_suite_accuracy"] == 0.5
    assert local["parse_rate"] == 1.0
    assert (base["execution_accuracy"], base["parse_rate"]) == (0.0, 0.0)
    assert set(summary["by"]) == {"sql_complexity", "sql_task_type"}
    assert sum(group["local"]["rows"] for group in summary["by"]["sql_complexity"].values()) == 13

    broken = records[-1]
    assert broken["gold_executable"] is False and "no such column: b" in broken["gold_error"]
    assert broken["predictions"]["local"]["execution_correct"] is None
    assert records[1]["predictions"]["local"]["error"]  # every wrong answer says why
    assert records[0]["predictions"]["base"]["error"] == "no SQL in the answer"

    report = {"dataset": "shipped", "split": "test", "rows": len(records), "metrics": summary}
    markdown = summary_markdown(report, ["local", "base"])
    assert "| execution accuracy | 50.0% (6/12) | 0.0% (0/12) |" in markdown
    assert "The gold SQL runs on 12 of them (92.3%); the other 1 are left out" in markdown
    assert "| sql_complexity | model | rows | gold runs | execution accuracy | test-suite accuracy |" in markdown
    assert "| basic SQL | base |" in markdown
    chart = write_accuracy_chart(summary, ["local", "base"], tmp_path / "accuracy.png")
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_a_failed_request_is_a_wrong_answer_that_says_so():
    records = judge_rows(shipped_rows("test")[:1], {"local": [Answer("", "APITimeoutError: Request timed out.")]})
    verdict = records[0]["predictions"]["local"]
    assert verdict["execution_correct"] is False
    assert verdict["error"] == "the request failed: APITimeoutError: Request timed out."
    summary = summarise(records, ["local"])
    assert summary["overall"]["local"]["failed_requests"] == 1
    markdown = summary_markdown({"dataset": "shipped", "split": "test", "rows": 1, "metrics": summary}, ["local"])
    assert "**Requests failed** (those rows count as wrong; see `request_error` in results.json): `local` 1 of 1." in markdown


# --- execution-guided answers -------------------------------------------------------------------

SHOP_ROW = {"sql_context": "CREATE TABLE shop (item VARCHAR(20), price INT); INSERT INTO shop VALUES ('pen', 2), ('ink', 9), ('pad', 4);"}
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"  # stopped at the time limit


def fenced(sql):
    return f"```sql\n{sql}\n```"


def guided(*candidates):
    [answer] = execution_guided([SHOP_ROW], [Answer(candidates[0], candidates=list(candidates))], default_sandbox())
    return answer


def test_execution_guided_answers_drop_failing_candidates_and_take_the_majority_result():
    answer = guided(fenced("SELECT item FROM shop WHERE price > 1"), fenced("SELECT nope FROM shop"), fenced(ENDLESS),
                    "No SQL here.", fenced("SELECT item FROM shop WHERE price > 3"),
                    fenced("SELECT item FROM shop WHERE price >= 4"), fenced("SELECT item FROM shop WHERE 4 <= price"))
    assert answer.text == fenced("SELECT item FROM shop WHERE price > 3")
    assert answer.vote == "sampled candidate 4 won: 3 of the 4 candidates whose SQL runs (7 asked) give its result"


def test_execution_guided_ties_go_to_the_greedy_answer_and_nothing_runnable_keeps_it():
    tie = guided(fenced("SELECT item FROM shop WHERE price > 3"), fenced("SELECT item FROM shop"))
    assert tie.text == fenced("SELECT item FROM shop WHERE price > 3") and tie.vote.startswith("the greedy answer won: 1 of the 2")
    nothing = guided("I do not know.", fenced("SELECT nope FROM shop"))
    assert (nothing.text, nothing.vote) == ("I do not know.", "none of the 2 candidates' SQL runs: the greedy answer stands")


def test_one_candidate_keeps_the_greedy_answer_and_records_show_the_vote():
    greedy = Answer(fenced("SELECT item FROM shop"))
    assert execution_guided([SHOP_ROW], [greedy], default_sandbox()) == [greedy]
    with pytest.raises(ConfigError, match="eval_candidates: must be at least 1"):
        evaluate_config(eval_candidates=0)
    row = shipped_rows("test")[0]
    voted = Answer(fenced(row["sql"]), candidates=[fenced(row["sql"]), "no SQL"], vote="the greedy answer won")
    prediction = judge_rows([row], {"local": [voted]})[0]["predictions"]["local"]
    assert (prediction["candidates"], prediction["vote"], prediction["test_suite_correct"]) == (voted.candidates, voted.vote, True)


def test_the_any_candidate_ceiling_counts_a_row_a_losing_candidate_got_right():
    row = shipped_rows("test")[0]
    lost = Answer("no SQL", candidates=["no SQL", fenced(row["sql"])], vote="none ran")
    records = judge_rows([row], {"local": [lost]})
    prediction = records[0]["predictions"]["local"]
    assert (prediction["test_suite_correct"], prediction["any_candidate_correct"]) == (False, True)
    shares = summarise(records, ["local"])["overall"]["local"]
    assert (shares["test_suite_accuracy"], shares["any_candidate_accuracy"]) == (0.0, 1.0)


def test_a_server_that_is_down_is_a_one_line_error(capsys, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, _, err = run_in_process(capsys, "--openai_api_base", url, "--eval_output_dir", tmp_path / "out")
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith(f"sqltune: error: openai_api_base: no OpenAI-compatible server answers at {url}")
    assert not (tmp_path / "out").exists()


# --- end to end, through a real vLLM CPU server -------------------------------------------------


@pytest.fixture(scope="module")
def vllm_url(tiny_model):
    with start_vllm_server(tiny_model) as base_url:
        yield base_url


@pytest.mark.vllm
def test_evaluate_end_to_end_with_a_random_model(vllm_url, tmp_path):
    """A random model writes no SQL: the run must still finish, judging every row wrong with a reason."""
    out = tmp_path / "eval"
    done = run_main(["--config", EVALUATE_CONFIG, "--eval_limit", 5, "--openai_api_base", vllm_url,
                     "--eval_output_dir", out, "--eval_max_tokens", 32])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "row/s" in done.stderr  # the progress bars
    results = json.loads((out / "results.json").read_text())
    assert results["rows"] == len(results["examples"]) == 5
    for example in results["examples"]:
        assert example["gold_executable"] is True
        verdict = example["predictions"]["local"]
        assert verdict["execution_correct"] is False and verdict["test_suite_correct"] is False
        assert verdict["error"]
    assert results["metrics"]["overall"]["local"]["execution_accuracy"] == 0.0
    assert "| execution accuracy | 0.0% (0/5) |" in (out / "summary.md").read_text()
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.vllm
def test_evaluate_asks_for_n_candidates_and_records_the_vote(vllm_url, tmp_path):
    out = tmp_path / "guided"
    done = run_main(["--config", EVALUATE_CONFIG, "--eval_limit", 2, "--openai_api_base", vllm_url, "--eval_output_dir", out,
                     "--eval_max_tokens", 16, "--eval_candidates", 3])
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["candidates"] == 3
    for example in results["examples"]:
        prediction = example["predictions"]["local"]
        assert len(prediction["candidates"]) == 3 and prediction["answer"] in prediction["candidates"]
        assert prediction["vote"]  # a random model writes no SQL: "none of the 3 candidates' SQL runs ..."


@pytest.mark.vllm
def test_a_model_the_server_lacks_is_a_one_line_error(vllm_url, capsys, tmp_path):
    code, _, err = run_in_process(capsys, "--openai_api_base", vllm_url, "--served_model_name", "nope",
                                  "--eval_output_dir", tmp_path / "out")
    assert code == 2
    assert err.strip() == f"sqltune: error: served_model_name: 'nope' is not served at {vllm_url} (it serves: local)"


@pytest.mark.vllm
def test_a_comparison_writes_one_side_by_side_table(vllm_url, capsys, tmp_path):
    out = tmp_path / "compare"
    code, stdout, err = run_in_process(capsys, "--openai_api_base", vllm_url, "--compare_model_name", "local",
                                       "--compare_api_base", vllm_url.replace("127.0.0.1", "localhost"),
                                       "--eval_limit", 2, "--eval_max_tokens", 8, "--eval_output_dir", out)
    assert code == 0, err[-3000:]
    labels = [f"local ({vllm_url})", f"local ({vllm_url.replace('127.0.0.1', 'localhost')})"]
    assert f"| metric | {labels[0]} | {labels[1]} |" in (out / "summary.md").read_text()
    assert set(json.loads((out / "results.json").read_text())["examples"][0]["predictions"]) == set(labels)
    assert f"Evaluation written to {out}" in stdout
