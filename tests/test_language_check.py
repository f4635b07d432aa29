"""The checker: library files are sound, broken files give exactly the recorded messages, and the
CLI (constraintc check) reports through constraintc.cli.main."""

from __future__ import annotations

from pathlib import Path

import pytest

from constraintc.cli import main
from constraintc.errors import ConstraintcError, OptionError
from constraintc.language import RulesError, load_rules, parse_rules
from constraintc.resources import library_rules

GOLDEN = Path(__file__).parent / "golden"
BROKEN = sorted(GOLDEN.glob("*.rules"))


def test_library_is_shipped():
    names = {p.stem for p in library_rules()}
    assert {"transitivity", "transitivity_closed", "dsep", "semigraphoid"} <= names


@pytest.mark.parametrize("path", library_rules(), ids=lambda p: p.stem)
def test_check_library_file_exits_0(path, capsys):
    assert main(["check", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["dsep", "dsep.rules", "rules/dsep.rules"])
def test_library_names_resolve_from_anywhere(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", name]) == 0


def test_missing_file_is_a_clean_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "nosuch.rules"]) == 2
    err = capsys.readouterr().err
    assert "no rules file 'nosuch.rules'" in err and "dsep" in err and "Traceback" not in err


def test_golden_files_exist():
    assert len(BROKEN) >= 6


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_golden_broken_file_messages(path, monkeypatch, capsys):
    """`constraintc check` prints exactly the recorded diagnostics (regenerate deliberately)."""
    monkeypatch.chdir(GOLDEN)
    assert main(["check", path.name]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    expected = path.with_suffix(".expected").read_text()
    assert captured.err == expected


def test_every_error_of_a_file_at_once():
    with pytest.raises(RulesError) as info:
        load_rules(GOLDEN / "unknown_names.rules")
    assert len(info.value.diagnostics) == 7
    lines = [d.span.line for d in info.value.diagnostics]
    assert lines == sorted(lines)


def test_error_format_file_line_col_source_caret():
    with pytest.raises(RulesError) as info:
        parse_rules("query p(X: node)\nrule r: forall X: p(X) & q(X)\n", filename="f.rules")
    assert str(info.value).splitlines() == [
        "f.rules:2:26: error: unknown predicate 'q'",
        "    rule r: forall X: p(X) & q(X)",
        "                             ^~~~",
    ]


def test_params_override_and_errors():
    assert load_rules("dsep").params == {"cond_size": 2}
    prog = load_rules("dsep", params={"cond_size": 3})
    assert prog.params == {"cond_size": 3} and prog.domain_sizes == {"nodeset": 3}
    with pytest.raises(OptionError, match="cond_sise"):
        load_rules("dsep", params={"cond_sise": 1})
    with pytest.raises(OptionError):
        load_rules("dsep", params={"cond_size": -1})


def test_cli_check_param_option(capsys):
    assert main(["check", "dsep", "--param", "cond_size=1"]) == 0
    assert main(["check", "dsep", "--param", "cond_size"]) == 2
    assert "--param" in capsys.readouterr().err


def test_check_several_files_reports_all(capsys, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    assert main(["check", "dsep", "types.rules", "recursion.rules"]) == 1
    captured = capsys.readouterr()
    assert "dsep: ok" in captured.out
    assert "types.rules:6:56" in captured.err and "recursion.rules:5:47" in captured.err


def test_query_declarations_api():
    prog = load_rules("transitivity")
    q = prog.queries["causes"]
    assert (q.name, q.arity, q.arg_types) == ("causes", 2, ("node", "node"))
    assert (q.template, q.yes, q.no) == ("Does {X} cause {Y}?", "Yes", "No")
    assert q.render(("a", "b")) == "Does a cause b?"
    d = load_rules("dsep").queries["dsep"]
    assert d.template == "Are {X} and {Y} d-separated given {Z}?"
    assert d.render(("a", "b", frozenset({"d", "c"}))) == "Are a and b d-separated given {c, d}?"
    assert d.render(("a", "b", set())) == "Are a and b d-separated given {}?"
    assert d.render(["x", "y", ["z"]]) == "Are x and y d-separated given {z}?"
    assert set(prog.givens) == {"edge"} and set(prog.rules) == {
        "edges_cause", "transitive", "irreflexive", "asymmetric"}


def test_query_defaults_without_options():
    prog = parse_rules("query p(X: node)\nrule r: forall X: p(X)")
    q = prog.queries["p"]
    assert q.template is None and q.yes == "Yes" and q.no == "No"
    with pytest.raises(ValueError):
        q.render(("a",))


def test_syntax_errors_in_every_statement_are_reported():
    text = "given e(X: node)\nrule a: e(X) &&\nrule b: forall x: e(x)\nrule c: e(X) => e(X)\n"
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="s.rules")
    assert [(d.span.line, d.span.column) for d in info.value.diagnostics] == [(2, 15), (3, 16), (4, 14)]


@pytest.mark.parametrize("text,message", [
    ("rule r p(X)", "expected ':' after the rule name"),
    ("given e(X: node)\nrule r: forall X: e(X) | e(X", "missing ')'"),
    ("given e(X: node)\nrule r: forall X: e(X))", "unexpected ')'"),
    ("given E(X: node)", "predicate names start with a lowercase letter"),
    ("param k", "a parameter needs a whole-number value"),
    ("domain s = subsets of node", "write a subset domain as"),
    ("query p(X: node) question Does", "double-quoted string"),
    ("define p(X: node) = q(X)", "use ':='"),
    ("given e(X: node)\nrule r: forall X: !e(X)", "write negation as '~'"),
    ("given e(X: node)\nrule r: forall X: e(X) == e(X)", "write equality as a single '='"),
    ("query p(X: node) where p(X)", "a 'where' condition may only compare"),
    ("query p(X: node)\nrule r: forall X in foo: p(X)", "unknown type 'foo'"),
    ("query p(X: node)\nquery p(Y: node)", "duplicate predicate 'p'"),
    ("domain node = subsets of node up to 1", "'node' is the built-in domain"),
    ("query p(X: node)\nrule r: forall X: exists X: p(X)", "X is already bound"),
    ("query p(X: node)\nrule r: forall X: atmost k X: p(X)", "unknown parameter 'k'"),
])
def test_friendly_messages(text, message):
    with pytest.raises(RulesError) as info:
        parse_rules(text)
    assert message in str(info.value)


@pytest.mark.parametrize("prefix,suffix", [("(", ")"), ("~", ""), ("exists Y: ", "")])
def test_deep_nesting_ends_in_a_result_or_a_clean_error(prefix, suffix):
    text = "query p(X: node)\nrule r: forall X: " + prefix * 3000 + "p(X)" + suffix * 3000
    try:
        parse_rules(text)
    except ConstraintcError as err:
        assert "error:" in str(err)
