"""How long evaluation's judging takes: the real gretel rows, each gold prepared and two answers judged
(the gold itself, and a typical wrong answer), as `mode: evaluate` does per model.

    uv run python bench/judge_speed.py [--rows ../shared/data/gretel_test_sample_100.jsonl] [--rounds 3]

Prints the median seconds for the whole set and per row, with the command that made them.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scoring import judge, prepare_gold  # noqa: E402

DEFAULT_ROWS = ROOT.parent / "shared" / "data" / "gretel_test_sample_100.jsonl"


def wrong_answer(row):
    """A plausible wrong answer: the gold without its last condition or clause cut off at WHERE."""
    sql = row["sql"].rstrip().rstrip(";")
    head = sql.split(" WHERE ")[0]
    return f"```sql\n{head if head != sql else sql + ' LIMIT 1'}\n```"


def judge_all(rows):
    verdicts = []
    for row in rows:
        gold = prepare_gold(row["sql_context"], row["sql"])
        for answer in (f"```sql\n{row['sql']}\n```", wrong_answer(row)):
            verdicts.append(judge(gold, answer))
    return verdicts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, default=DEFAULT_ROWS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.rows.read_text().splitlines()]
    judge_all(rows[:5])  # warm-up: imports, worker processes
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        verdicts = judge_all(rows)
        times.append(time.perf_counter() - start)
    right = sum(bool(v.test_suite_correct) for v in verdicts)
    median = statistics.median(times)
    print(f"$ uv run python bench/judge_speed.py --rows {args.rows} --rounds {args.rounds}")
    print(f"{len(rows)} rows, {len(verdicts)} answers judged ({right} test-suite-correct): "
          f"median {median:.2f} s ({1000 * median / len(rows):.0f} ms a row) over {args.rounds} rounds "
          f"[{', '.join(f'{t:.2f}' for t in times)}]")


if __name__ == "__main__":
    main()
