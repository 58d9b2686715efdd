"""Generate sqltune's own text-to-SQL data set in the columns of gretelai/synthetic_text_to_sql.

Our machines and CI cannot reach the Hugging Face hub, so the project ships a training set made here. It is
built for breadth: each row draws a domain and 1-3 of its tables from data/schema_vocabulary.json (names in
snake_case or CamelCase, gretel's column types, 1-5 sample rows, sometimes none), then composes its query from
independent parts (select items, predicates, joins, grouping, ordering, subqueries, CTEs, windows, set
operations, data changes and definitions), each part with its own English. Every gold is run in the SQL sandbox
when it is made, as the judge runs it (MySQL/PostgreSQL-flavoured golds after translation); a row is drawn again
when its gold fails, returns nothing, changes nothing, or depends on the order rows were stored in (ties at a
LIMIT cut included). The test split holds out whole domains, and so their tables, that train never shows.

Deterministic: the same arguments give byte-identical files.

    uv run python data/generate_synthetic_sql.py --out data/synthetic_text_to_sql --train 2000 --test 200 --seed 42
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the sandbox and the judge live at the root
from sandbox import Job, Sandbox, SandboxError  # noqa: E402
from scoring import canonical_rows, load_schema, run_sql, tie_broken  # noqa: E402

VOCABULARY = Path(__file__).with_name("schema_vocabulary.json")
HELD_OUT_DOMAINS = 24
MAX_CONTEXT_CHARS = 1000
CAMEL_SHARE = 0.15  # snake_case tables written in CamelCase
NULL_SHARE = 0.05  # of the values of optional columns
EMPTY_CONTEXT_SHARE = 0.7  # of the data-changing and -defining rows: a schema without INSERTs
DIALECT_SHARE = 0.15  # of the items and predicates with a MySQL or PostgreSQL way to write them

COMPLEXITY = {
    "basic SQL": "basic SQL with a simple select statement",
    "aggregation": "aggregation functions (COUNT, SUM, AVG, MIN, MAX, etc.), and HAVING clause",
    "single join": "only one join (specify inner, outer, cross)",
    "multiple_joins": "two or more joins (specify inner, outer, cross)",
    "subqueries": "subqueries, including correlated and nested subqueries",
    "CTEs": "common table expressions",
    "window functions": "window functions (e.g., ROW_NUMBER, LEAD, LAG, RANK, NTILE, PERCENT_RANK, etc.) with partitioning and ordering",
    "set operations": "set operations such as UNION, INTERSECT, and EXCEPT",
}
TASK_TYPE = {
    "analytics and reporting": "generating reports, dashboards, and analytical insights",
    "data retrieval": "basic data fetching queries",
    "data manipulation": "inserting, updating, or deleting records",
    "data definition": "creating, altering, or dropping tables and other database objects",
}
TYPES = {
    "id": ("INT", "INTEGER", "INT"),
    "fk": ("INT", "INTEGER", "INT"),
    "int": ("INT", "INTEGER", "INT"),
    "name": ("VARCHAR(50)", "VARCHAR(100)", "VARCHAR(255)", "TEXT"),
    "cat": ("VARCHAR(20)", "VARCHAR(50)", "VARCHAR(255)", "TEXT"),
    "dec": ("DECIMAL(10,2)", "DECIMAL(12,2)", "FLOAT", "REAL"),
    "year": ("YEAR", "INT"),
    "date": ("DATE",),
    "time": ("TIME",),
    "bool": ("BOOLEAN",),
}
NUMBERS = ("int", "dec")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


# ---------------------------------------------------------------- schemas and sample rows


@dataclass
class Column:
    name: str
    kind: str  # id, fk, name, cat, int, dec, year, date, time, bool
    sql_type: str
    phrase: str  # how a question names it
    pool: tuple = ()  # name/cat values, or (low, high) for numbers, years and dates


@dataclass
class Table:
    name: str
    plural: str  # English
    singular: str
    columns: list[Column]
    rows: list[list] = field(default_factory=list)
    ref: str = ""  # the alias (or name) a join qualifies columns with; "" in single-table queries

    def of(self, *kinds: str) -> list[Column]:
        return [column for column in self.columns if column.kind in kinds]

    def q(self, column: Column) -> str:
        return f"{self.ref}.{column.name}" if self.ref else column.name

    def values(self, column: Column) -> list:
        index = self.columns.index(column)
        return [row[index] for row in self.rows if row[index] is not None]

    def source(self) -> str:
        return f"{self.name} {self.ref}" if self.ref and self.ref != self.name else self.name


def words_of(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+|\d+", name)]


def english(words: list[str]) -> str:
    return " ".join("ID" if w == "id" else w for w in words)


def styled(words: list[str], camel: bool) -> str:
    return "".join(w.upper() if w == "id" else w.capitalize() for w in words) if camel else "_".join(words)


def singular(word: str) -> str:
    for ending, replacement in (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("s", "")):
        if word.endswith(ending):
            return word[: -len(ending)] + replacement
    return word


def parse_column(spec: str, pools: dict, camel: bool) -> Column:
    """'vessel_type cat:Tanker|Ferry', 'capacity int:10-90', 'country' (a shared pool) or 'name:A|B' (a label)."""
    name, _, kind = spec.partition(" ")
    if ":" in name:
        name, kind = "name", spec
    elif not kind:
        name, kind = {"person": "name"}.get(name, name), name
    kind, _, args = kind.partition(":")
    if kind in pools:
        kind, pool = ("name" if kind == "person" else "cat"), tuple(pools[kind])
    elif kind in ("name", "cat"):
        pool = tuple(args.split("|"))
    elif args:
        low, high = re.fullmatch(r"(-?[\d.]+)-(-?[\d.]+)", args).groups()
        pool = (float(low), float(high)) if kind == "dec" else (int(low), int(high))
    else:
        pool = ()
    words = words_of(name)
    return Column(styled(words, camel), kind, "", english(words), pool)


def draw_value(rng: random.Random, column: Column, used: set):
    kind, pool = column.kind, column.pool
    if kind == "name":
        choices = [v for v in pool if v not in used] or list(pool)
        return rng.choice(choices)
    if kind == "cat":
        return rng.choice(pool)
    if kind in ("int", "year"):
        return rng.randint(*pool)
    if kind == "dec":
        return round(rng.uniform(*pool), 2)
    if kind == "date":
        first, last = datetime.date(pool[0], 1, 1), datetime.date(pool[1], 12, 31)
        return (first + datetime.timedelta(days=rng.randint(0, (last - first).days))).isoformat()
    if kind == "time":
        return f"{rng.randint(6, 22):02d}:{rng.choice((0, 15, 30, 45)):02d}:00"
    return rng.random() < 0.5  # bool


def fill_rows(rng: random.Random, table: Table, count: int, parent_ids: list[int]) -> None:
    used: set = set()
    for number in range(1, count + 1):
        row = []
        for column in table.columns:
            if column.kind == "id":
                value = number
            elif column.kind == "fk":
                value = rng.choice(parent_ids)
            elif column.kind not in ("name", "bool") and rng.random() < NULL_SHARE:
                value = None
            else:
                value = draw_value(rng, column, used)
                used.add(value)
            row.append(value)
        table.rows.append(row)


def build_table(rng: random.Random, name: str, spec: str, pools: dict, camel: bool, parent: Table | None) -> Table:
    words = words_of(name)
    one = singular(words[-1])
    columns = [parse_column(part.strip(), pools, camel) for part in spec.split(";")]
    keep = sorted(rng.sample(range(len(columns)), rng.randint(min(2, len(columns)), len(columns))))
    columns = [columns[i] for i in keep]
    for column in columns:
        column.sql_type = rng.choice(TYPES[column.kind])
    ident = [*words[:-1], one, "id"] if rng.random() < 0.7 else ["id"]
    keys = [Column(styled(ident, camel), "id", rng.choice(TYPES["id"]), english(ident))]
    if parent is not None:
        reference = [*words_of(parent.singular), "id"]
        keys.append(Column(styled(reference, camel), "fk", parent.columns[0].sql_type, f"{parent.singular} ID"))
    table_name = name if any(c.isupper() for c in name) else styled(words, camel)
    return Table(table_name, " ".join(words), " ".join([*words[:-1], one]), keys + columns)


def draw_tables(rng: random.Random, vocabulary: dict, domain: dict, count: int) -> list[Table]:
    """`count` tables of the domain: its first (the parent) and children that reference it."""
    camel = any(c.isupper() for c in "".join(domain["tables"])) or rng.random() < CAMEL_SHARE
    specs = list(domain["tables"].items())
    if count == 1:
        specs = [rng.choice(specs)]
    elif count == 3:
        extra_name, extra_spec = rng.choice(sorted(vocabulary["extra_tables"].items()))
        parent_singular = singular(words_of(specs[0][0])[-1])
        specs.append((extra_name.format(singular="_".join([*words_of(specs[0][0])[:-1], parent_singular])), extra_spec))
    tables: list[Table] = []
    for index, (name, spec) in enumerate(specs):
        parent = tables[0] if index and count > 1 else None
        table = build_table(rng, name, spec, vocabulary["pools"], camel, parent)
        fill_rows(
            rng,
            table,
            rng.choice((1, 2, 3, 3, 4, 4, 5, 5)) if parent is None else rng.randint(2, 5),
            [row[0] for row in tables[0].rows] if parent else [],
        )
        tables.append(table)
    return tables


def literal(value, bool_style: tuple = ("TRUE", "FALSE")) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return bool_style[0] if value else bool_style[1]
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def render_context(rng: random.Random, tables: list[Table], with_rows: bool) -> str:
    bool_style = rng.choice((("TRUE", "FALSE"), ("true", "false"), ("1", "0")))
    exists = "IF NOT EXISTS " if rng.random() < 0.08 else ""
    key = " PRIMARY KEY" if rng.random() < 0.15 else ""
    parts = []
    for table in tables:
        columns = ", ".join(f"{c.name} {c.sql_type}{key if c.kind == 'id' else ''}" for c in table.columns)
        parts.append(f"CREATE TABLE {exists}{table.name} ({columns});")
        if with_rows:
            names = f" ({', '.join(c.name for c in table.columns)})" if rng.random() < 0.85 else ""
            rows = ["(" + ", ".join(literal(v, bool_style) for v in row) + ")" for row in table.rows]
            groups = [rows] if rng.random() < 0.85 else [[row] for row in rows]
            parts += [f"INSERT INTO {table.name}{names} VALUES {', '.join(group)};" for group in groups]
    return " ".join(parts)


# ---------------------------------------------------------------- parts of a query, each with its English


@dataclass
class Part:
    sql: str
    words: str


def number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def human_date(iso: str) -> str:
    day = datetime.date.fromisoformat(iso)
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def threshold(rng: random.Random, values: list, kind: str):
    value = rng.choice(values)
    return int(value) if kind == "dec" and value > 20 else value


def text_predicate(rng: random.Random, ref: str, column: Column, values: list) -> Part:
    value, phrase = rng.choice(values), column.phrase
    place = column.pool and column.name.lower() in ("country", "city", "region", "state")
    others = [v for v in column.pool if v != value]
    letters = re.sub(r"[^A-Za-z]", "", value)
    choice = rng.random()
    if choice < 0.1 and others:
        pair = sorted([value, rng.choice(others)])
        return Part(
            f"{ref} IN ({literal(pair[0])}, {literal(pair[1])})",
            f"in {pair[0]} or {pair[1]}" if place else f"with a {phrase} of {pair[0]} or {pair[1]}",
        )
    if choice < 0.15 and len(letters) >= 4:
        start = rng.randint(0, len(letters) - 3)
        piece = letters[start : start + 3]
        if rng.random() < DIALECT_SHARE:  # PostgreSQL's case-insensitive LIKE
            return Part(f"{ref} ILIKE '%{piece.lower()}%'", f"whose {phrase} contains '{piece.lower()}' in any case")
        return Part(f"{ref} LIKE '%{piece}%'", f"whose {phrase} contains '{piece}'")
    if choice < 0.18:
        return Part(f"{ref} LIKE '{value[0]}%'", f"whose {phrase} starts with '{value[0]}'")
    if choice < 0.21 and others:
        return Part(
            f"{ref} <> {literal(value)}", f"outside {value}" if place else f"with a {phrase} other than {value}"
        )
    return Part(
        f"{ref} = {literal(value)}",
        rng.choice(
            [f"in {value}", f"from {value}"]
            if place
            else [f"with {phrase} '{value}'", f"whose {phrase} is {value}", f"in the '{value}' {phrase}"]
        ),
    )


def number_predicate(rng: random.Random, ref: str, column: Column, values: list) -> Part:
    phrase, low = column.phrase, threshold(rng, values, column.kind)
    choice = rng.random()
    if choice < 0.25 and len(set(values)) > 1:
        high = max(values)
        low = min(low, threshold(rng, values, column.kind))
        high = int(high) + 1 if column.kind == "dec" and high > 20 else high
        return Part(
            f"{ref} BETWEEN {number(low)} AND {number(high)}", f"with {phrase} between {number(low)} and {number(high)}"
        )
    if choice < 0.6:
        return Part(
            f"{ref} > {number(low)}",
            rng.choice([f"with {phrase} over {number(low)}", f"whose {phrase} exceeds {number(low)}"]),
        )
    if choice < 0.8:
        return Part(f"{ref} < {number(low)}", f"with {phrase} below {number(low)}")
    return Part(f"{ref} >= {number(low)}", f"with {phrase} of at least {number(low)}")


def date_predicate(rng: random.Random, ref: str, column: Column, values: list) -> Part:
    day = datetime.date.fromisoformat(rng.choice(values))
    choice = rng.random()
    if choice < 0.4:
        return Part(f"{ref} BETWEEN '{day.year}-01-01' AND '{day.year}-12-31'", f"in {day.year}")
    if choice < 0.45:
        quarter = (day.month - 1) // 3
        end = datetime.date(day.year + (quarter == 3), (quarter * 3 + 3) % 12 + 1, 1) - datetime.timedelta(days=1)
        return Part(
            f"{ref} BETWEEN '{day.year}-{quarter * 3 + 1:02d}-01' AND '{end.isoformat()}'",
            f"in Q{quarter + 1} {day.year}",
        )
    if choice < 0.55:
        if rng.random() < DIALECT_SHARE:  # MySQL's way to name a month
            return Part(
                f"DATE_FORMAT({ref}, '%Y-%m') = '{day.year}-{day.month:02d}'", f"in {MONTHS[day.month - 1]} {day.year}"
            )
        return Part(
            f"strftime('%Y-%m', {ref}) = '{day.year}-{day.month:02d}'", f"in {MONTHS[day.month - 1]} {day.year}"
        )
    if choice < 0.8:
        return Part(f"{ref} >= '{day.isoformat()}'", f"since {human_date(day.isoformat())}")
    return Part(f"{ref} < '{day.isoformat()}'", f"before {human_date(day.isoformat())}")


def predicate(rng: random.Random, table: Table, column: Column) -> Part | None:
    """A condition on the column that some sample row meets."""
    ref, values = table.q(column), table.values(column)
    if len(values) < len(table.rows) and rng.random() < 0.15:
        return (
            Part(f"{ref} IS NULL", f"with no {column.phrase} recorded")
            if rng.random() < 0.5
            else Part(f"{ref} IS NOT NULL", f"with a {column.phrase} recorded")
        )
    if not values:
        return None
    if column.kind in ("name", "cat"):
        return text_predicate(rng, ref, column, values)
    if column.kind in NUMBERS:
        return number_predicate(rng, ref, column, values)
    if column.kind == "date":
        return date_predicate(rng, ref, column, values)
    if column.kind == "year":
        year = rng.choice(values)
        return rng.choice(
            [
                Part(f"{ref} = {year}", f"from {year}"),
                Part(f"{ref} > {year}", f"after {year}"),
                Part(f"{ref} <= {year}", f"up to {year}"),
            ]
        )
    if column.kind == "time":
        return Part(f"{ref} > '{rng.choice(values)}'", f"after {rng.choice(values)[:5]}")
    flag = rng.choice(values)
    word = column.phrase.removeprefix("is ").removeprefix("has ")
    return Part(
        f"{ref} = {literal(flag, rng.choice((('TRUE', 'FALSE'), ('true', 'false'), ('1', '0'))))}",
        f"that are {word}" if flag else f"that are not {word}",
    )


def predicates(rng: random.Random, table: Table, count: int, skip: tuple = ()) -> list[Part]:
    candidates = [c for c in table.columns if c.kind not in ("id", "fk") and c.name not in skip]
    parts = [predicate(rng, table, c) for c in rng.sample(candidates, min(count, len(candidates)))]
    return [part for part in parts if part is not None]


def condition_count(rng: random.Random) -> int:
    return rng.choices((0, 1, 2, 3), (0.16, 0.45, 0.29, 0.1))[0]


def where(parts: list[Part]) -> str:
    return " WHERE " + " AND ".join(p.sql for p in parts) if parts else ""


def phrase_list(parts: list[Part]) -> str:
    return "".join(" " + p.words if i == 0 else (" and " + p.words) for i, p in enumerate(parts))


def select_item(rng: random.Random, table: Table, column: Column) -> Part:
    """The column as a select item: as it is, or through a function, CASE or arithmetic."""
    ref, phrase, values = table.q(column), column.phrase, table.values(column)
    if rng.random() > 0.08 or not values:
        return Part(ref, f"the {phrase}")
    alias = styled(words_of(column.name), False)
    if column.kind in NUMBERS:
        cut = threshold(rng, values, column.kind)
        return rng.choice(
            [
                Part(
                    f"CASE WHEN {ref} > {number(cut)} THEN 'High' ELSE 'Low' END AS {alias}_level",
                    f"whether the {phrase} is high (over {number(cut)}) or low",
                ),
                Part(f"ROUND({ref} / 1000.0, 2) AS {alias}_thousands", f"the {phrase} in thousands"),
                Part(f"COALESCE({ref}, 0) AS {alias}", f"the {phrase} (0 when missing)"),
                Part(f"{ref} * 1.1 AS {alias}_increased", f"the {phrase} increased by 10%"),
            ]
        )
    if column.kind == "date":
        return rng.choice(
            [
                Part(f"strftime('%Y', {ref}) AS year", f"the year of the {phrase}"),
                Part(f"strftime('%m', {ref}) AS month", f"the month of the {phrase}"),
            ]
        )
    if column.kind in ("name", "cat"):
        value = rng.choice(values)
        if rng.random() < DIALECT_SHARE:  # MySQL's CONCAT (SQLite has only ||)
            return Part(
                f"CONCAT({ref}, ' (', {ref}, ')') AS {alias}_label", f"the {phrase} followed by itself in brackets"
            )
        return rng.choice(
            [
                Part(f"UPPER({ref}) AS {alias}_upper", f"the {phrase} in capitals"),
                Part(f"LENGTH({ref}) AS {alias}_length", f"the length of the {phrase}"),
                Part(
                    f"CASE WHEN {ref} = {literal(value)} THEN 'Yes' ELSE 'No' END AS is_{styled(words_of(value), False) or 'match'}",
                    f"whether the {phrase} is {value}",
                ),
            ]
        )
    return Part(ref, f"the {phrase}")


def aggregate(rng: random.Random, table: Table) -> Part:
    """One aggregate over the table's rows, with the words for it: mostly COUNT/SUM/AVG/MAX/MIN of one column, as in
    gretel; rounding, differences, casts, distinct counts and percentages in about one row of seven."""
    measures, labels = table.of(*NUMBERS), table.of("cat", "name")
    plain = [Part("COUNT(*)", f"the number of {table.plural}")] * max(1, len(measures))
    fancy = []
    for m in measures:
        ref, p = table.q(m), m.phrase
        plain += [
            Part(f"SUM({ref})", f"the total {p}"),
            Part(f"AVG({ref})", f"the average {p}"),
            Part(f"MAX({ref})", f"the highest {p}") if rng.random() < 0.5 else Part(f"MIN({ref})", f"the lowest {p}"),
        ]
        fancy += [
            Part(f"ROUND(AVG({ref}), 2)", f"the average {p}, rounded to two decimals"),
            Part(f"MAX({ref}) - MIN({ref})", f"the gap between the highest and the lowest {p}"),
        ]
        if m.kind == "int":
            fancy.append(Part(f"CAST(AVG({ref}) AS INTEGER)", f"the average {p} as a whole number"))
    for c in labels:
        fancy.append(Part(f"COUNT(DISTINCT {table.q(c)})", f"the number of different {c.phrase} values"))
        if c.kind == "cat" and (values := table.values(c)):
            value = rng.choice(values)
            fancy.append(
                Part(
                    f"100.0 * SUM(CASE WHEN {table.q(c)} = {literal(value)} THEN 1 ELSE 0 END) / COUNT(*)",
                    f"the percentage of {table.plural} with {c.phrase} {value}",
                )
            )
    if len(measures) >= 2:
        a, b = rng.sample(measures, 2)
        fancy.append(Part(f"SUM({table.q(a)} * {table.q(b)})", f"the total of {a.phrase} times {b.phrase}"))
    return rng.choice(fancy if fancy and rng.random() < 0.15 else plain)


def alias_for(words: str) -> str:
    kept = [w for w in re.findall(r"[a-z]+", words.lower()) if w not in ("the", "of", "a", "to", "and", "with", "as")]
    return "_".join(kept[:3]) or "value"


def without_repeats(text: str) -> str:
    """'exchange exchange name' -> 'exchange name'."""
    words = text.split()
    return " ".join(w for i, w in enumerate(words) if i == 0 or w != words[i - 1])


def order_words(phrase: str, descending: bool) -> str:
    return f"sorted by {phrase} from highest to lowest" if descending else f"sorted by {phrase} from lowest to highest"


# ---------------------------------------------------------------- query shapes: parts put together


@dataclass
class Query:
    sql: str
    prompt: str
    complexity: str
    task: str
    explanation: str


def sentence(rng: random.Random, body: str, asking: bool = False) -> str:
    verb = rng.choice(
        ("What is",) if asking else ("List", "Show", "Find", "Display", "Identify", "Get", "Return", "Retrieve")
    )
    text = f"{verb} {body}".strip()
    return text[0].upper() + text[1:] + ("?" if asking else ".")


def basic_select(rng: random.Random, tables: list[Table]) -> Query:
    table = tables[0]
    labels = table.of("name", "cat") or table.of("id")
    shown = rng.sample([c for c in table.columns if c.kind != "fk"], min(rng.randint(1, 3), len(table.columns) - 1))
    if not any(c in labels for c in shown):
        shown.insert(0, labels[0])
    items = [select_item(rng, table, c) for c in shown]
    conditions = predicates(rng, table, condition_count(rng))
    distinct = len(items) == 1 and shown[0].kind == "cat" and rng.random() < 0.5
    sql = f"SELECT {'DISTINCT ' if distinct else ''}{', '.join(i.sql for i in items)} FROM {table.name}{where(conditions)}"
    what = ", ".join(i.words for i in items[:-1]) + (" and " if len(items) > 1 else "") + items[-1].words
    body = (
        f"{what.replace('the ', 'the distinct ', 1) if distinct else what} of {table.plural}{phrase_list(conditions)}"
    )
    measures = table.of(*NUMBERS, "date")
    if measures and rng.random() < 0.35:
        key, descending = rng.choice(measures), rng.random() < 0.6
        sql += f" ORDER BY {key.name}{' DESC' if descending else ''}"
        if rng.random() < 0.6:
            limit = rng.randint(1, 3)
            sql += f" LIMIT {limit}"
            rows = f"{limit} {table.plural}" if limit > 1 else table.singular
            extreme = "highest" if descending else "lowest"
            body = f"{what} of the {rows} with the {extreme} {key.phrase}{phrase_list(conditions)}"
        else:
            body += ", " + order_words(key.phrase, descending)
    return Query(
        sql,
        sentence(rng, " ".join(body.split())),
        "basic SQL",
        "data retrieval",
        f"This query selects {what} from {table.name}"
        + (f", keeping rows{phrase_list(conditions)}." if conditions else "."),
    )


def grouping(rng: random.Random, table: Table, measured: str) -> tuple[list[str], str]:
    """GROUP BY keys (SQL) and their words: one or two categories the aggregate does not use, or a date's year."""
    keys = [c for c in table.of("cat") or table.of("name") if table.q(c) not in measured]
    dates = table.of("date")
    if dates and rng.random() < 0.15:
        ref = table.q(dates[0])
        return [f"strftime('%Y', {ref})"], f"for each year of {dates[0].phrase}"
    if not keys:
        return [], ""
    chosen = rng.sample(keys, 2 if len(keys) > 1 and rng.random() < 0.15 else 1)
    return [table.q(c) for c in chosen], rng.choice(("for each ", "by ", "per ")) + " and ".join(
        c.phrase for c in chosen
    )


def aggregation(rng: random.Random, tables: list[Table]) -> Query:
    """SELECT [keys,] aggregate FROM table [WHERE] [GROUP BY [HAVING]] [ORDER BY [LIMIT]]."""
    table = tables[0]
    measure = aggregate(rng, table)
    # Conditions and groups on the column the aggregate reads would make it trivial.
    keys, key_words = grouping(rng, table, measure.sql) if rng.random() < 0.45 else ([], "")
    used = measure.sql + " ".join(keys)
    conditions = predicates(
        rng, table, condition_count(rng), skip=tuple(c.name for c in table.columns if c.name in used)
    )
    item = f"{measure.sql} AS {alias_for(measure.words)}" if rng.random() < 0.4 else measure.sql
    sql = f"SELECT {', '.join([*keys, item])} FROM {table.name}{where(conditions)}"
    of_scope = "" if table.plural in measure.words else f" of {table.plural}"
    body = f"{measure.words}{of_scope}{phrase_list(conditions)} {key_words}"
    if keys:
        sql += f" GROUP BY {', '.join(keys)}"
        if rng.random() < 0.2:
            sql += " HAVING COUNT(*) > 1"
            body += f", only where there is more than one {table.singular}"
        if rng.random() < 0.35:
            descending = rng.random() < 0.7
            sql += f" ORDER BY {measure.sql}{' DESC' if descending else ''}"
            if rng.random() < 0.5:
                sql += " LIMIT 1"
                body += f", and keep only the one with the {'highest' if descending else 'lowest'} value"
            else:
                body += ", " + order_words("that value", descending)
    return Query(
        sql,
        count_question(rng, sql, body, table),
        "aggregation",
        "analytics and reporting",
        f"This query aggregates the rows of {table.name}" + (" by group." if "GROUP BY" in sql else "."),
    )


def count_question(rng: random.Random, sql: str, body: str, table: Table) -> str:
    body = " ".join(body.split())
    if body.startswith("the number of ") and rng.random() < 0.5:
        return "How many " + body.removeprefix("the number of ") + "?"
    return sentence(rng, body, asking=rng.random() < 0.5 and "GROUP BY" not in sql)


def aliases(rng: random.Random, tables: list[Table]) -> None:
    full = rng.random() < 0.3
    for index, table in enumerate(tables):
        table.ref = (
            table.name if full else (words_of(table.name)[0][0] + (str(index + 1) if rng.random() < 0.2 else ""))
        )
    if len({t.ref for t in tables}) < len(tables):
        for index, table in enumerate(tables):
            table.ref = f"t{index + 1}"


def join_clause(rng: random.Random, parent: Table, child: Table, outer: bool) -> str:
    keyword = "LEFT JOIN" if outer else rng.choice(("JOIN", "INNER JOIN"))
    return f" {keyword} {child.source()} ON {parent.q(parent.columns[0])} = {child.q(child.columns[1])}"


def joined(rng: random.Random, tables: list[Table]) -> Query:
    """Parent joined with one child (or two): rows from both, or an aggregate of the child per parent."""
    aliases(rng, tables)
    parent, children = tables[0], tables[1:]
    outer = rng.random() < 0.25
    source = parent.source() + "".join(
        join_clause(rng, parent, child, outer and i == 0) for i, child in enumerate(children)
    )
    child = children[0]
    conditions = predicates(rng, parent, rng.choice((0, 1, 1))) + predicates(rng, child, rng.choice((0, 1)))
    complexity = "single join" if len(children) == 1 else "multiple_joins"
    labels = parent.of("name", "cat") or parent.of("id")
    if rng.random() < 0.7:
        label = rng.choice(labels)
        measure = aggregate(rng, child)
        total = measure.sql
        if outer and total.startswith(("SUM(", "AVG(")):
            total = f"COALESCE({total}, 0)"
        sql = f"SELECT {parent.q(label)}, {total} AS {alias_for(measure.words)} FROM {source}{where(conditions)} GROUP BY {parent.q(label)}"
        body = (
            f"{measure.words} for each {without_repeats(parent.singular + ' ' + label.phrase)}{phrase_list(conditions)}"
        )
        if outer:
            body += f", including {parent.plural} without any {child.plural}"
        if rng.random() < 0.35:
            descending = rng.random() < 0.7
            sql += f" ORDER BY {alias_for(measure.words)}{' DESC' if descending else ''}"
            body += ", " + order_words("that value", descending)
        return Query(
            sql,
            sentence(rng, body, asking=rng.random() < 0.4),
            complexity,
            "analytics and reporting",
            f"This query joins {' and '.join(t.name for t in tables)} and aggregates per {parent.singular}.",
        )
    shown = [rng.choice(labels)] + rng.sample(child.of(*NUMBERS, "date", "cat", "name") or child.of("id"), 1)
    items = [select_item(rng, parent, shown[0]), select_item(rng, child, shown[1])]
    sql = f"SELECT {items[0].sql}, {items[1].sql} FROM {source}{where(conditions)}"
    body = f"{items[0].words} of {parent.plural} and {items[1].words} of their {child.plural}{phrase_list(conditions)}"
    return Query(
        sql,
        sentence(rng, body),
        complexity,
        "data retrieval",
        f"This query joins {' and '.join(t.name for t in tables)} on the {parent.singular} ID.",
    )


def subquery(rng: random.Random, tables: list[Table]) -> Query:
    """IN, EXISTS / NOT EXISTS (correlated), a scalar subquery, a correlated comparison, or a derived table."""
    parent = tables[0]
    label = (parent.of("name", "cat") or parent.of("id"))[0]
    measures = parent.of(*NUMBERS)
    choice = rng.random()
    if len(tables) > 1 and choice < 0.45:
        child = tables[1]
        condition = predicates(rng, child, 1)
        if rng.random() < 0.5 and condition:
            sql = (
                f"SELECT {label.name} FROM {parent.name} WHERE {parent.columns[0].name} IN "
                f"(SELECT {child.columns[1].name} FROM {child.name} WHERE {condition[0].sql})"
            )
            body = f"the {label.phrase} of {parent.plural} that have {child.plural}{phrase_list(condition)}"
        else:
            parent.ref, child.ref = "p", "c"
            negate = rng.random() < 0.5
            sql = (
                f"SELECT {parent.q(label)} FROM {parent.source()} WHERE {'NOT ' if negate else ''}EXISTS "
                f"(SELECT 1 FROM {child.source()} WHERE {child.q(child.columns[1])} = {parent.q(parent.columns[0])})"
            )
            body = f"the {label.phrase} of {parent.plural} {'without any' if negate else 'with at least one'} {child.singular}"
        return Query(
            sql,
            sentence(rng, body),
            "subqueries",
            "data retrieval",
            f"This query filters {parent.name} with a subquery on {child.name}.",
        )
    if not measures:
        return aggregation(rng, tables[:1])
    measure = rng.choice(measures)
    keys = parent.of("cat")
    if choice < 0.6 and keys:
        key = rng.choice(keys)
        sql = (
            f"SELECT {label.name}, {measure.name} FROM {parent.name} t WHERE {measure.name} > "
            f"(SELECT AVG({measure.name}) FROM {parent.name} WHERE {key.name} = t.{key.name})"
        )
        body = f"the {parent.plural} whose {measure.phrase} is above the average of their {key.phrase}, with that {measure.phrase}"
    elif choice < 0.75 and keys:
        key = rng.choice(keys)
        sql = (
            f"SELECT MAX(total) FROM (SELECT {key.name}, SUM({measure.name}) AS total FROM {parent.name} "
            f"GROUP BY {key.name}) AS totals"
        )
        body = f"the largest total {measure.phrase} of any {key.phrase}"
    else:
        extreme = rng.choice(("AVG", "MAX", "MIN"))
        comparison = {"AVG": ">", "MAX": "=", "MIN": "="}[extreme]
        sql = f"SELECT {label.name} FROM {parent.name} WHERE {measure.name} {comparison} (SELECT {extreme}({measure.name}) FROM {parent.name})"
        body = {
            "AVG": f"the {label.phrase} of {parent.plural} with a {measure.phrase} above the average",
            "MAX": f"the {label.phrase} of the {parent.singular} with the highest {measure.phrase}",
            "MIN": f"the {label.phrase} of the {parent.singular} with the lowest {measure.phrase}",
        }[extreme]
    return Query(
        sql,
        sentence(rng, body),
        "subqueries",
        "analytics and reporting",
        f"This query compares each row of {parent.name} with a subquery's aggregate.",
    )


def common_table(rng: random.Random, tables: list[Table]) -> Query:
    table = tables[0]
    keys, measures = table.of("cat", "name"), table.of(*NUMBERS)
    if not keys or not measures:
        return aggregation(rng, tables[:1])
    key, measure = rng.choice(keys), rng.choice(measures)
    name = rng.choice(("totals", "summary", f"{words_of(key.name)[-1]}_totals"))
    sql = (
        f"WITH {name} AS (SELECT {key.name}, SUM({measure.name}) AS total FROM {table.name} GROUP BY {key.name}) "
        f"SELECT {key.name}, total FROM {name} WHERE total >= (SELECT AVG(total) FROM {name})"
    )
    body = f"each {key.phrase} whose total {measure.phrase} is at least the average over all {key.phrase} values, with its total"
    return Query(
        sql,
        sentence(rng, body),
        "CTEs",
        "analytics and reporting",
        f"This query totals {measure.phrase} per {key.phrase} in a CTE and keeps totals at or above their average.",
    )


def window(rng: random.Random, tables: list[Table]) -> Query:
    table = tables[0]
    label = (table.of("name", "cat") or table.of("id"))[0]
    measures, keys, dates = table.of(*NUMBERS), table.of("cat"), table.of("date")
    if not measures:
        return basic_select(rng, tables[:1])
    m = rng.choice(measures)
    options = [
        (
            f"RANK() OVER (ORDER BY {m.name} DESC) AS rank_by_{alias_for(m.phrase)}",
            f"their rank by {m.phrase}, highest first",
        ),
        (
            f"SUM({m.name}) OVER (ORDER BY {table.columns[0].name}) AS running_total",
            f"a running total of {m.phrase} in ID order",
        ),
    ]
    if keys:
        k = rng.choice(keys)
        options += [
            (
                f"AVG({m.name}) OVER (PARTITION BY {k.name}) AS avg_in_{alias_for(k.phrase)}",
                f"the average {m.phrase} of their {k.phrase}",
            ),
            (
                f"DENSE_RANK() OVER (PARTITION BY {k.name} ORDER BY {m.name} DESC) AS rank_in_{alias_for(k.phrase)}",
                f"their rank by {m.phrase} within their {k.phrase}",
            ),
        ]
    if dates:
        options.append(
            (
                f"LAG({m.name}) OVER (ORDER BY {dates[0].name}) AS previous_{alias_for(m.phrase)}",
                f"the {m.phrase} of the previous {table.singular} by {dates[0].phrase}",
            )
        )
    item, words = rng.choice(options)
    sql = f"SELECT {label.name}, {m.name}, {item} FROM {table.name}"
    return Query(
        sql,
        sentence(rng, f"the {label.phrase} and {m.phrase} of each {table.singular}, with {words}"),
        "window functions",
        "analytics and reporting",
        f"This query uses a window function over {table.name}.",
    )


def set_operation(rng: random.Random, tables: list[Table]) -> Query:
    table = tables[0]
    label = (table.of("name") or table.of("cat") or table.of("id"))[0]
    conditions = predicates(rng, table, 2, skip=(label.name,))
    if len(conditions) < 2:
        return basic_select(rng, tables[:1])
    first, second = conditions
    operator, joint = rng.choice((("UNION", "or"), ("INTERSECT", "and also"), ("EXCEPT", "but not")))
    sql = f"SELECT {label.name} FROM {table.name} WHERE {first.sql} {operator} SELECT {label.name} FROM {table.name} WHERE {second.sql}"
    body = f"the {label.phrase} of {table.plural} {first.words}, {joint} those {second.words}"
    return Query(
        sql,
        sentence(rng, body),
        "set operations",
        "data retrieval",
        f"This query combines two selections from {table.name} with {operator}.",
    )


def data_change(rng: random.Random, tables: list[Table]) -> Query:
    table = tables[0]
    choice = rng.random()
    if choice < 0.4 or not table.rows:
        values = [
            len(table.rows) + 1 if c.kind == "id" else draw_value(rng, c, set()) if c.kind != "fk" else 1
            for c in table.columns
        ]
        names = ", ".join(c.name for c in table.columns)
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join(literal(v) for v in values)})"
        described = ", ".join(
            f"{c.phrase} { ({True: 'yes', False: 'no'}.get(v, v) if isinstance(v, (bool, str)) else number(v)) }"
            for c, v in zip(table.columns, values)
            if c.kind not in ("id", "fk")
        )
        prompt = rng.choice(
            ("Insert a new {s} with {d}.", "Add a {s} record: {d}.", "Insert a record for a new {s} ({d}).")
        ).format(s=table.singular, d=described)
        return Query(sql, prompt, "basic SQL", "data manipulation", f"This statement adds one row to {table.name}.")
    conditions = predicates(rng, table, rng.choice((1, 1, 2)))
    if choice < 0.7 and (measures := table.of(*NUMBERS)):
        m = rng.choice(measures)
        percent = rng.choice((5, 10, 15, 20))
        sql = f"UPDATE {table.name} SET {m.name} = {m.name} * {1 + percent / 100:g}{where(conditions)}"
        prompt = f"Increase the {m.phrase} of {table.plural}{phrase_list(conditions)} by {percent}%."
        return Query(sql, prompt, "basic SQL", "data manipulation", f"This statement updates {m.name} in {table.name}.")
    sql = f"DELETE FROM {table.name}{where(conditions)}"
    prompt = rng.choice(("Delete {p}{c}.", "Remove all {p}{c}.", "Delete records of {p}{c}.")).format(
        p=table.plural, c=phrase_list(conditions)
    )
    return Query(sql, prompt, "basic SQL", "data manipulation", f"This statement deletes rows of {table.name}.")


def data_definition(rng: random.Random, tables: list[Table]) -> Query:
    table = tables[0]
    choice = rng.random()
    if choice < 0.3:
        conditions = predicates(rng, table, 1)
        view = "_".join(
            [*words_of(table.name)[-1:], *(alias_for(conditions[0].words).split("_")[:2] if conditions else ["view"])]
        )
        label = (table.of("name", "cat") or table.of("id"))[0]
        sql = f"CREATE VIEW {view} AS SELECT {label.name} FROM {table.name}{where(conditions)}"
        prompt = f"Create a view named {view} with the {label.phrase} of {table.plural}{phrase_list(conditions)}."
    elif choice < 0.55:
        column = rng.choice(table.columns[1:] or table.columns)
        sql = f"CREATE INDEX idx_{column.name.lower()} ON {table.name} ({column.name})"
        prompt = f"Create an index on the {column.phrase} column of the {table.name} table."
    elif choice < 0.8:
        kind = rng.choice(("dec", "date", "cat", "int", "bool"))
        column = rng.choice(("notes", "last_updated", "status", "priority", "rating", "is_verified", "budget"))
        sql_type = {"dec": "DECIMAL(10,2)", "date": "DATE", "cat": "VARCHAR(50)", "int": "INT", "bool": "BOOLEAN"}[kind]
        sql = f"ALTER TABLE {table.name} ADD COLUMN {column} {sql_type}"
        prompt = f"Add a {column.replace('_', ' ')} column of type {sql_type} to the {table.name} table."
    else:
        name = f"{words_of(table.name)[-1]}_archive"
        columns = ", ".join(f"{c.name} {c.sql_type}" for c in table.columns[:3])
        sql = f"CREATE TABLE {name} ({columns})"
        prompt = (
            f"Create a table {name} with the columns {', '.join(c.name for c in table.columns[:3])} of {table.name}."
        )
    return Query(
        sql,
        prompt,
        "basic SQL",
        "data definition",
        f"This statement changes the schema: {sql.split(' (')[0].split(' AS ')[0]}.",
    )


# (shape, table count, weight): reads make most rows, data changes and definitions a minority, as in gretel.
SHAPES = (
    (basic_select, 1, 0.13),
    (aggregation, 1, 0.47),
    (joined, 2, 0.19),
    (joined, 3, 0.03),
    (subquery, 2, 0.09),
    (common_table, 1, 0.01),
    (window, 1, 0.04),
    (set_operation, 1, 0.01),
    (data_change, 1, 0.02),
    (data_definition, 1, 0.01),
)


# ---------------------------------------------------------------- verification and rows


def reversed_rows(tables: list[Table]) -> list[Table]:
    return [Table(t.name, t.plural, t.singular, t.columns, t.rows[::-1], t.ref) for t in tables]


def multiset(result) -> list:
    """A result's rows in a fixed order, values as the judge compares them (sums of floats differ in the last bits)."""
    return sorted(map(repr, canonical_rows(result)))


def holds(sandbox: Sandbox, context: str, reverse_context: str, sql: str, writes: bool) -> bool:
    """The gold runs; a read returns some non-NULL value, the same for rows stored in reverse, and no LIMIT cut
    ties; a write changes the database."""
    try:
        schema = load_schema(context, sandbox)
        if writes:
            before = sandbox.run(Job(schema, state=True)).state
            return run_sql(sandbox, Job(schema, state=True), sql)[0].state != before
        outcome, runnable = run_sql(sandbox, Job(schema), sql)
        result = outcome.results[0]
        if not any(value is not None for row in result.rows for value in row):
            return False
        again = run_sql(sandbox, Job(load_schema(reverse_context, sandbox)), sql)[0].results[0]
        if multiset(again) != multiset(result):
            return False
        if " LIMIT " in runnable:
            ascending, descending = sandbox.run_all(
                [Job(schema, (v,)) for v in tie_broken(runnable, len(result.columns))]
            )
            return multiset(ascending.results[0]) == multiset(descending.results[0])
        return True
    except SandboxError:
        return False


def draw_row(rng: random.Random, vocabulary: dict, domains: list[dict], sandbox: Sandbox) -> dict | None:
    domain = rng.choice(domains)
    shape, count, _ = rng.choices(SHAPES, [weight for *_, weight in SHAPES])[0]
    tables = draw_tables(rng, vocabulary, domain, count)
    query = shape(rng, tables)
    writes = query.task in ("data manipulation", "data definition")
    with_rows = not (
        writes and query.sql.startswith(("INSERT", "CREATE", "ALTER")) and rng.random() < EMPTY_CONTEXT_SHARE
    )
    state = rng.getstate()
    context = render_context(rng, tables, with_rows)
    rng.setstate(state)  # the reversed context is written alike, only its rows in reverse order
    reverse_context = render_context(rng, reversed_rows(tables), with_rows)
    if len(context) > MAX_CONTEXT_CHARS or not holds(sandbox, context, reverse_context, query.sql, writes):
        return None
    return {
        "id": 0,
        "domain": domain["name"],
        "domain_description": domain["about"],
        "sql_complexity": query.complexity,
        "sql_complexity_description": COMPLEXITY[query.complexity],
        "sql_task_type": query.task,
        "sql_task_type_description": TASK_TYPE[query.task],
        "sql_prompt": query.prompt,
        "sql_context": context,
        "sql": query.sql,
        "sql_explanation": query.explanation,
    }


def generate_split(
    rng: random.Random, vocabulary: dict, domains: list[dict], count: int, first_id: int, seen: set, sandbox: Sandbox
) -> list[dict]:
    rows: list[dict] = []
    for _ in range(50 * count):
        if len(rows) == count:
            return rows
        row = draw_row(rng, vocabulary, domains, sandbox)
        if row is None or (row["sql_prompt"], row["sql_context"]) in seen:
            continue
        seen.add((row["sql_prompt"], row["sql_context"]))
        rows.append({**row, "id": first_id + len(rows)})
    raise RuntimeError(f"only {len(rows)} of {count} rows hold: a shape is probably broken")


def held_out(rng: random.Random, domains: list[dict]) -> list[dict]:
    """Domains for the test split, among those whose table names no other domain uses."""
    names = Counter(name.lower() for domain in domains for name in domain["tables"])
    unique = [d for d in domains if all(names[name.lower()] == 1 for name in d["tables"])]
    return sorted(rng.sample(unique, HELD_OUT_DOMAINS), key=lambda d: d["name"])


def generate(train_count: int, test_count: int, seed: int) -> dict[str, list[dict]]:
    vocabulary = json.loads(VOCABULARY.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    test_domains = held_out(rng, vocabulary["domains"])
    train_domains = [d for d in vocabulary["domains"] if d not in test_domains]
    seen: set = set()
    with Sandbox(workers=1) as sandbox:
        train = generate_split(rng, vocabulary, train_domains, train_count, 1, seen, sandbox)
        test = generate_split(rng, vocabulary, test_domains, test_count, train_count + 1, seen, sandbox)
    return {"train": train, "test": test}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path("data/synthetic_text_to_sql"), help="folder for train.jsonl and test.jsonl"
    )
    parser.add_argument("--train", type=int, default=2000, help="number of training rows")
    parser.add_argument("--test", type=int, default=200, help="number of test rows")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in generate(args.train, args.test, args.seed).items():
        write_jsonl(args.out / f"{name}.jsonl", rows)
        counts = Counter(row["sql_complexity"] for row in rows)
        print(
            f"{name}: {len(rows)} rows, {len({r['domain'] for r in rows})} domains; "
            + ", ".join(f"{k} {v}" for k, v in counts.most_common())
        )


if __name__ == "__main__":
    main()
