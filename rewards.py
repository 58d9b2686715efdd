"""GRPO's rewards: small functions over trl's batch, judged by the same judge that scores evaluation (scoring.py).

trl calls each reward with the batch's `completions` (and `completion_ids`) and every other dataset column as a
list; our GRPO rows carry the gold `sql` and its `sql_context` (grpo.py). Each function returns one float per
completion, or None where it cannot judge (the row's own gold fails), which trl leaves out of that row's score.

- `execution_reward`: 1.0 when the answer is test-suite-correct, `sample_rows` when it returns the gold's rows on the
  sample database only, `runs` when its SQL merely runs, 0 otherwise (Arctic-Text2SQL-R1's scheme, with a middle
  step). Answers run in the SQL sandbox's worker processes, several at once, each under the sandbox's time and
  memory limits, so a hostile or endless query scores 0 and never stalls training.
- `format_reward`: half for exactly one fenced SQL statement and nothing else, half for ending at <end_of_turn>
  rather than running to the length limit.

trl names each reward by its function (`rewards/execution_reward/mean` in the log), and weighs them with
GRPOConfig's `reward_weights`, in the order of `make_rewards`.
"""

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from scoring import SQL_FENCE_TAGS, judge, prepare_gold, split_statements

FENCE = "```"
ONLY_A_FENCE = re.compile(r"\s*```[ \t]*(?P<tag>\w*)[ \t]*\n(?P<body>.*?)```\s*", re.DOTALL)


@dataclass(frozen=True)
class ExecutionScores:
    correct: float = 1.0  # test-suite-correct: right on the sample rows and on every test-suite database
    sample_rows: float = 0.5  # right on the sample rows only
    runs: float = 0.1  # runs, with another result


class Judge:
    """Verdicts on many answers at once: a thread per answer in flight, each running its SQL in one of the sandbox's
    worker processes. `prepare_gold` (the gold on the sample rows, then its test-suite databases) costs more than a
    verdict, and GRPO sees every row num_generations times in a batch and again every epoch: it runs once per row."""

    def __init__(self, sandbox=None, workers=None):
        self.sandbox = sandbox
        self.pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="judge")
        self.golds = {}
        self.lock = threading.Lock()

    def verdicts(self, contexts, gold_sqls, answers):
        keys = list(zip(contexts, gold_sqls))
        self.prepare(set(keys))
        return list(self.pool.map(lambda key, answer: judge(self.golds[key], answer), keys, answers))

    def prepare(self, keys):
        """Prepare, in parallel, the golds not seen before (each once, though a batch repeats it per generation)."""
        with self.lock:
            missing = [key for key in keys if key not in self.golds]
        prepared = self.pool.map(lambda key: prepare_gold(*key, sandbox=self.sandbox), missing)
        with self.lock:
            self.golds.update(zip(missing, prepared))


def answer_text(completion):
    """A completion's text: trl passes conversational completions as [{"role": "assistant", "content": ...}]."""
    return completion if isinstance(completion, str) else completion[0]["content"]


def execution_score(verdict, scores):
    if verdict.test_suite_correct is None:  # the row's gold does not run: nothing to judge against
        return None
    if verdict.test_suite_correct:
        return scores.correct
    if verdict.execution_correct:
        return scores.sample_rows
    return scores.runs if verdict.runs else 0.0


def execution_reward(completions, sql, sql_context, *, judge_batch, scores, **_):
    """One score per completion from the judge's verdict on it (see ExecutionScores)."""
    verdicts = judge_batch.verdicts(sql_context, sql, [answer_text(completion) for completion in completions])
    return [execution_score(verdict, scores) for verdict in verdicts]


def one_fenced_statement(text):
    """The whole answer is one closed fenced block, tagged as SQL or untagged, holding one statement."""
    fenced = ONLY_A_FENCE.fullmatch(text)
    if fenced is None or FENCE in fenced["body"]:  # two blocks also match the pattern, as one with ``` inside
        return False
    return fenced["tag"].lower() in SQL_FENCE_TAGS | {""} and len(split_statements(fenced["body"])) == 1


def format_reward(completions, completion_ids, *, end_of_turn_id, **_):
    """0.5 for one fenced statement and nothing else, 0.5 for stopping at <end_of_turn>."""
    return [0.5 * one_fenced_statement(answer_text(completion)) + 0.5 * (bool(ids) and ids[-1] == end_of_turn_id)
            for completion, ids in zip(completions, completion_ids)]


def make_rewards(scores, end_of_turn_id, judge_batch=None):
    """[execution_reward, format_reward] bound to their settings, in the order GRPOConfig's reward_weights follow."""
    return [
        partial(execution_reward, judge_batch=judge_batch or Judge(), scores=scores),
        partial(format_reward, end_of_turn_id=end_of_turn_id),
    ]
