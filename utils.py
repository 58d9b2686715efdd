"""Data and prompts: everything between a dataset and the rows a trainer sees (the workshop's utils.py).

Read top to bottom: dataset loading (hub, local folder or file) and splitting, the gretel SQL formatting, and the
Jinja templates that turn a row into a conversation. The settings and their checks live in config.py.
"""

from pathlib import Path

import sqlparse
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

from config import HUB_HELP, TEMPLATE_NAMES, ConfigError, first_line, one_of


# ---------------------------------------------------------------- datasets


def load_raw_dataset(extra):
    """A DatasetDict from a local folder or file, or from the hub by name."""
    path = Path(extra.dataset_name)
    if path.is_dir():
        # datasets infers the format from the extensions and the splits from the file names (train, validation or
        # dev, test), as it does for a hub repository.
        return load_local_dataset(path, path)
    if path.is_file():
        return load_local_dataset(path, path.parent, data_files=path.name)  # one file: its rows are the train split
    return load_hub_dataset(extra.dataset_name, extra.dataset_subset)


def load_local_dataset(path, folder, **options):
    from datasets import load_dataset

    try:
        return load_dataset(str(folder), **options)
    except (ValueError, FileNotFoundError) as error:  # no data files, mixed formats, an unknown extension
        raise ConfigError(f"dataset_name: cannot read {path} ({first_line(error)})") from None


def load_hub_dataset(name, subset):
    from datasets import load_dataset

    try:
        return load_dataset(name, subset)
    except Exception as error:  # offline, gated, misspelt: datasets raises many types for these
        raise ConfigError(f"dataset_name: cannot load {name!r} from the Hugging Face hub ({first_line(error)}); {HUB_HELP}") from None


def split_dataset(raw, extra):
    """train / validation / test as the workshop derives them: validation carved from train, sized like test."""
    from datasets import DatasetDict

    one_of("dataset_train_split", extra.dataset_train_split, list(raw))
    if extra.dataset_test_split not in raw:
        raise ConfigError(f"dataset_test_split: {extra.dataset_test_split!r} is not one of {', '.join(raw)}")
    train, test = raw[extra.dataset_train_split], raw[extra.dataset_test_split]
    if extra.dataset_eval_split in raw:
        validation = raw[extra.dataset_eval_split]
    else:
        carved = train.train_test_split(test_size=min(len(test), len(train) // 2), seed=42)
        train, validation = carved["train"], carved["test"]
    if extra.train_samples:
        train = train.select(range(min(extra.train_samples, len(train))))
    if extra.eval_samples:
        validation = validation.select(range(min(extra.eval_samples, len(validation))))
    return DatasetDict(train=train, validation=validation, test=test)


def load_splits(extra):
    return split_dataset(load_raw_dataset(extra), extra)


# ---------------------------------------------------------------- gretel formatting


def format_sql(sql):
    """The workshop's formatting: sqlparse reindent and upper-case keywords, in a ```sql fence."""
    pretty = sqlparse.format(sql, reindent=True, keyword_case="upper").strip()
    return f"```sql\n{pretty}\n```"


def add_formatted_sql(row):
    return {"new_sql": format_sql(row["sql"]), "new_sql_context": format_sql(row["sql_context"])}


# ---------------------------------------------------------------- prompt templates

_jinja = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)


def load_templates(prompts_path):
    """{name: Template} for system, user and assistant; a syntax error names the file."""
    templates = {}
    for name in TEMPLATE_NAMES:
        path = Path(prompts_path) / f"{name}.jinja"
        try:
            templates[name] = _jinja.from_string(path.read_text())
        except TemplateSyntaxError as error:
            raise ConfigError(f"{path}:{error.lineno}: {error.message}") from None
        except OSError as error:
            raise ConfigError(f"prompts_path: cannot read {path} ({error.strerror})") from None
    return templates


def template_variables(prompts_path):
    """{template name: variables it uses}, found statically so a mismatch fails before any work is done."""
    found = {}
    for name in TEMPLATE_NAMES:
        path = Path(prompts_path) / f"{name}.jinja"
        found[name] = meta.find_undeclared_variables(_jinja.parse(path.read_text()))
    return found


def check_templates_fit(prompts_path, columns, dataset_name, names=TEMPLATE_NAMES):
    """Fail at start, naming the template and the column, when a template asks for data the rows lack."""
    for name, variables in template_variables(prompts_path).items():
        missing = sorted(variables - set(columns)) if name in names else []
        if missing:
            raise ConfigError(
                f"{prompts_path}/{name}.jinja uses {', '.join(missing)}, which dataset {dataset_name} lacks "
                f"(its columns: {', '.join(sorted(columns))})"
            )


def render(template, row):
    try:
        return template.render(**row).strip()
    except UndefinedError as error:
        raise ConfigError(f"template {template.name or ''}: {error.message}") from None


def conversation(row, templates, data_format="prompt_completion"):
    """One row as chat messages: system + user as the prompt, assistant as the completion."""
    prompt = [
        {"role": "system", "content": render(templates["system"], row)},
        {"role": "user", "content": render(templates["user"], row)},
    ]
    completion = [{"role": "assistant", "content": render(templates["assistant"], row)}]
    if data_format == "language_modeling":
        return {"messages": prompt + completion}
    return {"prompt": prompt, "completion": completion}


def prepare_split(split, extra, templates):
    """Formatted SQL + rendered templates, as conversational rows; only the chat columns are kept."""
    if {"sql", "sql_context"} <= set(split.column_names):
        split = split.map(add_formatted_sql, desc="Formatting SQL")
    check_templates_fit(extra.prompts_path, split.column_names, extra.dataset_name)
    return split.map(
        conversation, fn_kwargs={"templates": templates, "data_format": extra.fine_tuning_data_format},
        remove_columns=split.column_names, desc="Rendering prompts",
    )


def prepare_datasets(extra):
    """The train and validation splits, ready for SFTTrainer."""
    splits = load_splits(extra)
    templates = load_templates(extra.prompts_path)
    return prepare_split(splits["train"], extra, templates), prepare_split(splits["validation"], extra, templates)
