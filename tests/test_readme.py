"""The README names only commands, flags, files and sections that exist.

Every ``tunetrack COMMAND ...`` the README shows (shell code blocks and inline code) must be a
real command whose ``--help`` lists each flag used with it; every repository path it names must
exist; every ``(#anchor)`` link must reach a heading. Nothing here trains or imports MLflow.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import cache

import click
import pytest
from click.testing import CliRunner

from tunetrack.cli import main

from .conftest import ROOT

README = ROOT / "README.md"
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console", "text"}
# Top-level folders and files of the repository a README path may start with.
REPO_TOP = ("pipelines", "search_spaces", "docs", "benchmarks", "src", "tests", ".ci")
REPO_FILES = ("Makefile", "pyproject.toml", "README.md")
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_FLAG = re.compile(r"^(?:-[A-Za-z]|--[A-Za-z][\w-]*)$")  # -q, --max-trials; not -params_total
_TOPS = "|".join(map(re.escape, REPO_TOP))
_FILES = "|".join(map(re.escape, REPO_FILES))
_PATH = re.compile(rf"(?<![\w.-])((?:{_TOPS})/[^\s`'\"()\[\]|,;:]*|(?:{_FILES})(?![\w.-]))")


@dataclass(frozen=True)
class Invocation:
    """One ``tunetrack ...`` as the README writes it: the command path and the flags used."""

    text: str
    command: tuple[str, ...]
    flags: tuple[str, ...]


def snippets(markdown: str) -> list[str]:
    """Shell lines of fenced blocks (``\\``-continued lines joined) and inline code spans."""
    out: list[str] = []
    for lang, body in _FENCE.findall(markdown):
        if lang.lower() in SHELL_BLOCKS:
            out += [line.strip() for line in re.sub(r"\\\n", " ", body).splitlines()]
    prose = _FENCE.sub("", markdown)
    out += _INLINE.findall(prose.replace("\\|", "|"))  # table cells escape their pipes
    return [s for s in out if s]


def _tokens(text: str) -> list[str]:
    """Shell words, comments dropped (``# ...`` is prose, not a command)."""
    try:
        return shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in prose: whitespace is good enough
        return text.split("#", 1)[0].split()


def invocations(markdown: str) -> list[Invocation]:
    """Every ``tunetrack`` call in the README, up to the end of its shell command."""
    found = []
    for snippet in snippets(markdown):
        tokens = _tokens(snippet)
        for start, word in enumerate(tokens):
            if word != "tunetrack" and not word.endswith("/tunetrack"):
                continue
            depth, words, flags = 0, [], []
            for token in tokens[start + 1:]:
                if depth == 0 and token in ("&&", "||", ";", "|", ">", "2>"):
                    break  # a usage line's `[--a | --b]` has its `|` inside brackets
                depth += token.count("[") - token.count("]")
                bare = token.strip("[]").split("=", 1)[0]
                if _FLAG.match(bare):
                    flags.append(bare)
                elif not flags and re.fullmatch(r"[a-z][\w-]*", bare):
                    words.append(bare)  # the command words come before any flag
            found.append(Invocation(snippet, _command_path(words), tuple(flags)))
    return found


def _command_path(words: list[str]) -> tuple[str, ...]:
    """The longest prefix of ``words`` that click's groups would read as (sub)commands; one
    word past a command is kept, so an unknown sub-command is reported rather than dropped."""
    path: list[str] = []
    command: click.Command = main
    for word in words:
        if not isinstance(command, click.Group):
            break
        path.append(word)
        found = command.commands.get(word)
        if found is None:
            break
        command = found
    return tuple(path)


@cache
def command_help(command: tuple[str, ...]) -> str | None:
    """``tunetrack COMMAND --help`` as a user sees it; None when there is no such command."""
    result = CliRunner().invoke(main, [*command, "--help"], prog_name="tunetrack")
    return result.output if result.exit_code == 0 else None


def help_flags(help_text: str) -> set[str]:
    """The flags listed in the Options section of a ``--help`` text."""
    options = help_text.split("\nOptions:", 1)[-1]
    return set(re.findall(r"(?<![\w-])(-{1,2}[A-Za-z][\w-]*)", options))


def problems(call: Invocation) -> list[str]:
    """What is wrong with one invocation: an unknown command, or flags its help lacks."""
    help_text = command_help(call.command)
    if help_text is None:
        return [f"{call.text!r}: 'tunetrack {' '.join(call.command)}' is not a command"]
    known = help_flags(help_text)
    return [f"{call.text!r}: 'tunetrack {' '.join(call.command)}' has no option {flag}"
            for flag in call.flags if flag not in known]


def repo_paths(markdown: str) -> set[str]:
    """Repository files and folders named anywhere in the README (placeholders left out)."""
    paths = set()
    for path in _PATH.findall(markdown):
        path = path.rstrip(".")
        if not re.search(r"[<>*{}]|\.\.\.|…", path):
            paths.add(path)
    return paths


def anchors(markdown: str) -> set[str]:
    """GitHub's anchor for each heading: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", _FENCE.sub("", markdown), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


TEXT = README.read_text(encoding="utf-8")
CALLS = sorted(set(invocations(TEXT)), key=lambda c: (c.command, c.text))


# --------------------------------------------------------------------------- the README

@pytest.mark.parametrize("call", CALLS, ids=lambda c: " ".join(c.command) + ": " + c.text[:60])
def test_each_invocation_names_a_real_command_and_its_flags(call: Invocation):
    assert problems(call) == []


def test_every_command_is_documented():
    documented = {c.command[0] for c in CALLS if c.command}
    assert set(main.commands) <= documented, sorted(set(main.commands) - documented)


def test_every_path_exists():
    paths = repo_paths(TEXT)
    assert {"pipelines/digits.yaml", "benchmarks/RESULTS.md", "docs/ui-compare.png"} <= paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []


def test_every_family_has_its_pipeline_space_and_table_row():
    from tunetrack.space.catalog import FAMILIES

    rows = set(re.findall(r"^\| `(\w+)` \|", TEXT, re.M))
    assert rows == set(FAMILIES)
    for family in FAMILIES:
        assert (ROOT / "pipelines" / f"{family}.yaml").is_file()
        assert (ROOT / "search_spaces" / f"{family}.yaml").is_file()


def test_every_section_link_reaches_a_heading():
    links = set(re.findall(r"\]\(#([^)]+)\)", TEXT))
    assert links and links <= anchors(TEXT), sorted(links - anchors(TEXT))


def test_each_section_appears_once():
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", _FENCE.sub("", TEXT), re.M)
    assert len(headings) == len(set(headings)), headings


# --------------------------------------------------------------------------- the checker

SAMPLE = """\
Run `tunetrack search pipelines/digits.yaml --max-trials 3 -q` first.

```bash
.venv/bin/tunetrack compare --experiment digits \\
    --top 5 --no-such-flag   # a comment: --ignored
tunetrack frobnicate --fast && tunetrack ui --port 5000 | tee log
$ tunetrack promote --experiment e --model-name m [--top K | --ensemble K]
```

```python
from tunetrack import run_search  # not a shell block: no invocation
```

See `pipelines/nope.yaml`, `pipelines/<family>.yaml`, `docs/ARCHITECTURE.md` and [x](#nowhere).

## A heading
"""


def test_checker_reads_commands_and_flags():
    by_command = {c.command: c.flags for c in invocations(SAMPLE)}
    assert by_command == {
        ("search",): ("--max-trials", "-q"),
        ("compare",): ("--experiment", "--top", "--no-such-flag"),
        ("frobnicate",): ("--fast",),
        ("ui",): ("--port",),
        ("promote",): ("--experiment", "--model-name", "--top", "--ensemble"),
    }


def test_checker_catches_made_up_commands_and_flags():
    found = {c.command: problems(c) for c in invocations(SAMPLE)}
    assert found[("search",)] == [] and found[("ui",)] == [] and found[("promote",)] == []
    (bad_flag,) = found[("compare",)]
    assert bad_flag.endswith("'tunetrack compare' has no option --no-such-flag")
    (unknown,) = found[("frobnicate",)]
    assert unknown.endswith("'tunetrack frobnicate' is not a command")


def test_checker_catches_missing_paths_and_links():
    paths = repo_paths(SAMPLE)
    assert paths == {"pipelines/digits.yaml", "pipelines/nope.yaml", "docs/ARCHITECTURE.md"}
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == ["pipelines/nope.yaml"]
    assert "nowhere" not in anchors(SAMPLE) and "a-heading" in anchors(SAMPLE)


def test_help_flags_come_from_the_options_section():
    flags = help_flags(command_help(("search",)) or "")
    assert {"--max-trials", "--resume", "-q", "--quiet", "--help"} <= flags
    assert command_help(("no-such-command",)) is None
