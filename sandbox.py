"""The SQL sandbox: the project's security boundary for untrusted SQL (a model's answer, a user's schema).

    with Sandbox() as sandbox:                       # or default_sandbox(), shared and closed at exit
        outcome = sandbox.run(Job(schema=("CREATE TABLE t (a INT)", "INSERT INTO t VALUES (1)"),
                                  queries=("SELECT a FROM t",)))
        outcome.results[0].rows                      # [(1,)]

Every job runs in a worker process, on a throwaway in-memory SQLite database built from its schema statements.
The worker's SQL cannot outrun its limits:
- time: SQLite's progress handler stops a statement at the job's deadline (the fast first line); a long call
  inside C that never returns to it (printf with a huge width ...) is stopped by killing the worker;
- memory: SQLite's hard heap limit, the worker's address-space limit, row and byte caps on what comes back;
- files and the process: no file may be written (RLIMIT_FSIZE 0), no ATTACH, VACUUM, extension, virtual
  table or PRAGMA that changes anything, and only the SQL functions answers need (an allowlist);
- crashes: a worker that dies (even by a segfault) turns into a SandboxError in words, and the next job
  gets a fresh worker.
Understanding SQL (extracting it from an answer, translating dialects, comparing results) is the judge's
work (scoring.py), not this module's. Imports nothing of ours; the worker imports only the standard library.
"""

from __future__ import annotations

import atexit
import io
import os
import pickle
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from contextlib import closing, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection

TIMEOUT_S = 2.0  # per job: its schema, its queries and its end-state read together
MAX_ROWS = 1000  # rows kept per query result
KILL_MARGIN_S = 0.5  # how long past its deadline a job may take before its worker is killed
MEMORY_BYTES = 768 * 2**20  # the worker's address space
HEAP_BYTES = 256 * 2**20  # SQLite's own allocations (temporary b-trees of DISTINCT, ORDER BY ... included)
MAX_PAGES = 16_384  # 4 KiB pages: a database stops growing at 64 MiB
MAX_STATE_ROWS = 10_000  # rows per table or view in an end state
MAX_RESULT_BYTES = 16 * 2**20  # text and blobs in one job's answer
LIMITS = {
    sqlite3.SQLITE_LIMIT_LENGTH: 1_000_000,  # largest string, blob or row
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 1_000_000,
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,  # no second database: ATTACH fails even if the authorizer missed it
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 200,  # deep nesting costs C stack, not time the progress handler sees
    sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH: 10,
    sqlite3.SQLITE_LIMIT_WORKER_THREADS: 0,  # sorts stay on the thread the time limit watches
}
READ_ONLY_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
                               "foreign_key_list"})
# What SQL answers use (core, date, math, aggregate and window functions), and SQLite's internal functions
# that ALTER TABLE runs (users cannot call those). Everything else (fts3_tokenizer, load_extension,
# randomblob, zeroblob, sqlite_* ...) is refused.
ALLOWED_FUNCTIONS = frozenset("""
    abs char coalesce concat concat_ws format glob hex ifnull iif instr length like likely lower ltrim max min
    nullif octet_length printf quote random replace round rtrim sign soundex substr substring trim typeof unhex
    unicode unlikely upper changes last_insert_rowid total_changes
    date time datetime julianday unixepoch strftime timediff current_date current_time current_timestamp
    acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2 mod pi pow
    power radians sin sinh sqrt tan tanh trunc
    avg count group_concat string_agg sum total row_number rank dense_rank percent_rank cume_dist ntile lag lead
    first_value last_value nth_value json json_array json_array_length json_extract json_object json_type
    json_valid json_group_array json_group_object
    sqlite_rename_column sqlite_rename_table sqlite_rename_test sqlite_rename_quotefix sqlite_drop_column
""".split())
# Virtual tables that exist without CREATE VIRTUAL TABLE (dbstat reads raw pages, sqlite_dbpage writes them);
# the worker adds every module its SQLite has (PRAGMA module_list), whose names these tables take.
EPONYMOUS_TABLES = {"dbstat", "sqlite_dbpage", "sqlite_stmt", "json_each", "json_tree"}
READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                          sqlite3.SQLITE_RECURSIVE, sqlite3.SQLITE_PRAGMA})


class SandboxError(Exception):
    """A failure in words. `statement`: the schema statement (0-based) SQLite rejected; `stopped`: the
    sandbox itself stopped the SQL (a limit, a refusal, a crash), so another wording of it would not help."""

    def __init__(self, reason: str, statement: int | None = None, stopped: bool = False):
        super().__init__(reason)
        self.statement, self.stopped = statement, stopped


@dataclass(frozen=True)
class Job:
    """Build a database from `schema`, run `queries` on it in turn, read its end state if asked. Each
    statement is a text or a tuple of alternative texts: the first that SQLite runs counts."""

    schema: tuple = ()
    queries: tuple = ()
    state: bool = False
    timeout_s: float = TIMEOUT_S
    max_rows: int = MAX_ROWS

    def __post_init__(self):
        for name in ("schema", "queries"):
            statements = tuple((s,) if isinstance(s, str) else tuple(s) for s in getattr(self, name))
            object.__setattr__(self, name, statements)


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool  # the query had more than max_rows rows; only the first ones are here


@dataclass
class Outcome:
    results: list[QueryResult]  # one per query
    chosen: list[int]  # which alternative of each query ran
    schema_chosen: list[int]  # which alternative of each schema statement ran
    wrote: bool  # a query changed the data or the schema (SQLite's authorizer saw it)
    state: dict | None  # {"objects": [(type, name, table, sql)], "tables"/"views": {name: (columns, rows)}}


# ---------------------------------------------------------------- the parent's side: a pool of workers


class Sandbox:
    """Up to `workers` worker processes, started when first needed and reused; safe to share between threads."""

    def __init__(self, workers: int = 2):
        self._slots = threading.BoundedSemaphore(workers)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def run(self, job: Job) -> Outcome:
        outcome = self.run_all([job])[0]
        if isinstance(outcome, SandboxError):
            raise outcome
        return outcome

    def run_all(self, jobs: list[Job]) -> list[Outcome | SandboxError]:
        """Every job's Outcome or SandboxError, in order, from one worker (one round trip when all goes well)."""
        answers: list[Outcome | SandboxError] = []
        with self._worker() as worker:
            while len(answers) < len(jobs):
                pending = jobs[len(answers):]
                if worker.process.poll() is not None:  # died while idle (killed from outside, say)
                    worker.restart()
                worker.send(pending)
                for job in pending:
                    try:
                        answers.append(_answer(worker.receive(job.timeout_s + KILL_MARGIN_S)))
                    except SandboxError as error:  # the worker was killed or died: the rest go to a fresh one
                        answers.append(error)
                        worker.restart()
                        break
        return answers

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [worker.process.pid for worker in self._idle]

    @contextmanager
    def _worker(self):
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else _Worker()
            try:
                yield worker
            except BaseException:  # a half-read conversation cannot be resumed
                worker.kill()
                raise
            with self._lock:
                self._idle.append(worker)

    def close(self) -> None:
        with self._lock:
            for worker in self._idle:
                worker.kill()
            self._idle.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_default: Sandbox | None = None


def default_sandbox() -> Sandbox:
    """The process's shared Sandbox, one worker per CPU core."""
    global _default
    if _default is None:
        _default = Sandbox(workers=os.cpu_count() or 2)
        atexit.register(_default.close)
    return _default


def _answer(reply: dict) -> Outcome | SandboxError:
    if "error" in reply:
        return SandboxError(reply["error"], reply.get("statement"), reply.get("stopped", False))
    results = [QueryResult(list(columns), rows, truncated) for columns, rows, truncated in reply["results"]]
    return Outcome(results, reply["chosen"], reply["schema_chosen"], reply["wrote"], reply["state"])


class _Worker:
    """One worker process, talked to over a socket pair."""

    def __init__(self):
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-I", "-S", os.path.abspath(__file__), str(theirs.fileno())]
        self.process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self.channel = Connection(ours.detach())

    def send(self, jobs: list[Job]) -> None:
        self.channel.send_bytes(pickle.dumps([vars(job) for job in jobs]))

    def receive(self, wait_s: float) -> dict:
        if not self.channel.poll(wait_s):
            raise SandboxError(f"the SQL ran past the {wait_s - KILL_MARGIN_S:g} s time limit and was stopped",
                               stopped=True)
        try:
            return _SafeUnpickler.loads(self.channel.recv_bytes(maxlength=2 * MAX_RESULT_BYTES))
        except (EOFError, OSError):
            raise SandboxError(f"the sandbox's worker process died ({self._death()}); the SQL did not finish",
                               stopped=True) from None

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "no answer"
        return signal.Signals(-code).name if code < 0 else f"exit status {code}"

    def restart(self) -> None:
        self.kill()
        self.__init__()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.channel.close()


class _SafeUnpickler(pickle.Unpickler):
    """A worker's answers are plain values: refusing every class keeps a subverted worker from running code here."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"the sandbox's worker sent an object of class {module}.{name}")

    @classmethod
    def loads(cls, data: bytes):
        return cls(io.BytesIO(data)).load()


# ---------------------------------------------------------------- the worker's side


class _Guard:
    """What SQLite's callbacks share: the deadline, why the authorizer last refused something (SQLite only
    says "not authorized"), and whether it allowed a write."""

    def __init__(self, timeout_s: float):
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.refusal: str | None = None
        self.wrote = False

    def past_deadline(self) -> bool:  # the progress handler: True makes SQLite interrupt the statement
        return time.monotonic() > self.deadline

    def authorize(self, action, arg1, arg2, _database, _trigger) -> int:
        self.refusal = _refusal(action, arg1 or "", arg2 or "")
        if self.refusal is not None:
            return sqlite3.SQLITE_DENY
        self.wrote |= action not in READ_ACTIONS
        return sqlite3.SQLITE_OK


def _refusal(action: int, arg1: str, arg2: str) -> str | None:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        # VACUUM (INTO 'file') reaches the authorizer as an ATTACH too.
        return "ATTACH, DETACH and VACUUM are not allowed in the sandbox"
    if action == sqlite3.SQLITE_PRAGMA and arg1.lower() not in READ_ONLY_PRAGMAS:
        return f"PRAGMA {arg1} is not allowed in the sandbox"
    if action == sqlite3.SQLITE_FUNCTION and arg2.lower() not in ALLOWED_FUNCTIONS:
        return f"the function {arg2}() is not allowed in the sandbox"
    if action in (sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE):
        return "virtual tables are not allowed in the sandbox"
    if action == sqlite3.SQLITE_READ and arg1.lower() in EPONYMOUS_TABLES:
        return f"the virtual table {arg1} is not allowed in the sandbox"
    return None


def _protected_connection(guard: _Guard, image: bytes | None) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)  # autocommit: a failed statement leaves nothing open
    for limit, value in LIMITS.items():
        conn.setlimit(limit, value)
    if image is not None:
        conn.deserialize(image)
    # Before the authorizer, which refuses PRAGMAs that set things.
    conn.execute("PRAGMA temp_store = MEMORY")  # temporary tables and sorts never go to a file
    conn.execute(f"PRAGMA main.max_page_count = {MAX_PAGES}")
    conn.execute(f"PRAGMA temp.max_page_count = {MAX_PAGES}")
    if hasattr(conn, "setconfig"):  # Python 3.12+: no writes to the schema tables or the file format by SQL
        conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, True)
    conn.set_authorizer(guard.authorize)
    conn.set_progress_handler(guard.past_deadline, 1000)
    return conn


def _execute(conn: sqlite3.Connection, guard: _Guard, alternatives: tuple, what: str) -> tuple[int, sqlite3.Cursor]:
    """Run the first alternative SQLite accepts: (its index, its cursor). A stop by the sandbox is final."""
    first_error = None
    for index, sql in enumerate(alternatives):
        if not sql.strip():
            first_error = first_error or f"the {what} is empty"
            continue
        try:
            return index, conn.execute(sql)
        except sqlite3.Error as error:
            reason = _sandbox_reason(error, guard, what)
            if reason is not None:
                raise SandboxError(reason, stopped=True) from None
            first_error = first_error or " ".join(str(error).split())
    raise SandboxError(first_error or f"the {what} is empty")


def _sandbox_reason(error: Exception, guard: _Guard, what: str) -> str | None:
    """The reason in words when the sandbox stopped the statement, else None (SQLite's own words say it best)."""
    message = " ".join(str(error).split())
    if ("authoriz" in message or "prohibited" in message) and guard.refusal:
        return guard.refusal
    if message == "interrupted" and guard.past_deadline():
        return f"{what} stopped after {guard.timeout_s:g} s time limit"
    if message.startswith("You can only execute one statement"):
        return f"{what} holds several statements; the sandbox runs one at a time"
    if message == "string or blob too big":
        return f"a value grew past the sandbox's {LIMITS[sqlite3.SQLITE_LIMIT_LENGTH]:,}-byte limit"
    if message == "database or disk is full":
        return f"the database grew past the sandbox's {MAX_PAGES * 4 // 1024} MiB limit"
    if message == "out of memory" or isinstance(error, MemoryError):
        return f"the SQL ran out of the sandbox's memory ({HEAP_BYTES // 2**20} MiB for SQLite)"
    return None


def _database(schema: tuple, guard: _Guard, images: OrderedDict) -> tuple[sqlite3.Connection, list[int]]:
    """A protected database with `schema` run in it: from a copy of the built image when the worker has
    built this schema before (cloning is cheaper than running the statements again)."""
    if schema in images:
        images.move_to_end(schema)
        image, chosen = images[schema]
        return _protected_connection(guard, image), chosen
    conn, chosen = _protected_connection(guard, None), []
    try:
        for number, alternatives in enumerate(schema):
            try:
                chosen.append(_execute(conn, guard, alternatives, "schema")[0])
            except SandboxError as error:
                prefix = "" if error.stopped else f"schema statement {number + 1} of {len(schema)} fails: "
                raise SandboxError(prefix + str(error), number, error.stopped) from None
        if not conn.execute("SELECT count(*) FROM temp.sqlite_schema").fetchone()[0]:  # an image holds main only
            conn.set_authorizer(None)  # serialize reads the sqlite_dbpage table, which SQL must not
            images[schema] = (conn.serialize(), chosen)
            conn.set_authorizer(guard.authorize)
            if len(images) > 256:
                images.popitem(last=False)
    except BaseException:
        conn.close()
        raise
    guard.wrote = False  # building the schema is not the queries' doing
    return conn, chosen


def _query_result(cursor: sqlite3.Cursor, max_rows: int) -> tuple:
    with closing(cursor):  # an unfinished SELECT is reset, so it holds nothing against the next statement
        rows = cursor.fetchmany(max_rows + 1)
        columns = [column[0] for column in cursor.description or ()]
    _check_size(rows)
    return columns, rows[:max_rows], len(rows) > max_rows


def _check_size(rows: list[tuple]) -> None:
    size = sum(len(value) for row in rows for value in row if isinstance(value, (str, bytes)))
    if size > MAX_RESULT_BYTES:
        raise SandboxError(f"the result holds more than the sandbox's {MAX_RESULT_BYTES // 2**20} MiB", stopped=True)


def database_state(conn: sqlite3.Connection, guard: _Guard) -> dict:
    """The schema's objects in creation order, and every table's and view's columns and rows, sorted by
    SQLite (mixed types and all); at most MAX_STATE_ROWS rows each, within the job's time limit."""
    objects = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema "
                           "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid").fetchall()
    state: dict = {"objects": objects, "tables": {}, "views": {}}
    for kind, name, _, _ in objects:
        if kind in ("table", "view"):
            quoted = '"' + name.replace('"', '""') + '"'
            columns = [(column, declared) for _, column, declared, *_ in conn.execute(f"PRAGMA table_info({quoted})")]
            order = ", ".join(str(position) for position in range(1, len(columns) + 1))
            rows = conn.execute(f"SELECT * FROM {quoted} ORDER BY {order}").fetchmany(MAX_STATE_ROWS + 1)
            if len(rows) > MAX_STATE_ROWS:
                raise SandboxError(f"the {kind} {name} holds more than {MAX_STATE_ROWS:,} rows", stopped=True)
            _check_size(rows)
            state[f"{kind}s"][name] = (columns, rows)
    return state


def _run_job(job: dict, images: OrderedDict) -> dict:
    guard = _Guard(job["timeout_s"])
    try:
        conn, schema_chosen = _database(job["schema"], guard, images)
        with closing(conn):
            chosen, results = [], []
            for alternatives in job["queries"]:
                index, cursor = _execute(conn, guard, alternatives, "query")
                chosen.append(index)
                results.append(_query_result(cursor, job["max_rows"]))
            state = database_state(conn, guard) if job["state"] else None
    except SandboxError as error:
        return {"error": str(error), "statement": error.statement, "stopped": error.stopped}
    except (sqlite3.Error, MemoryError) as error:  # the end-state read stopped by a limit
        return {"error": _sandbox_reason(error, guard, "end-state read") or f"end-state read fails: {error}",
                "stopped": True}
    return {"results": results, "chosen": chosen, "schema_chosen": schema_chosen, "wrote": guard.wrote,
            "state": state}


def _serve(fd: int) -> None:
    """The worker: limit this process, then answer job lists until the parent hangs up."""
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    except (ValueError, OSError):  # macOS does not let a process cap its address space: the heap limit remains
        pass
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # writing any byte to a file kills the worker
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # and a crash leaves no core file behind
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute(f"PRAGMA hard_heap_limit = {HEAP_BYTES}")  # process-wide
        EPONYMOUS_TABLES.update(name.lower() for (name,) in conn.execute("PRAGMA module_list"))
    channel, images = Connection(fd), OrderedDict()
    while True:
        try:
            jobs = pickle.loads(channel.recv_bytes())  # from the parent, which is trusted
        except EOFError:
            return
        for job in jobs:
            reply = _run_job(job, images)
            try:
                channel.send_bytes(pickle.dumps(reply))
            except MemoryError:
                channel.send_bytes(pickle.dumps({"error": "the result is too large for the sandbox's memory",
                                                 "stopped": True}))


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
