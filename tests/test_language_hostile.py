"""Hostile and careless rules files: each test is the accident or attack it prevents.

A file of 50,000 broken lines, bytes that are not UTF-8, a byte-order mark, NUL bytes, numbers of
thousands of digits, 500-term formulas, formulas nested hundreds of levels deep, and syntax errors
that used to hide a file's semantic errors. Every one must end in a clean error that names the
line and column (or in a correct program), never in a traceback.
"""

from __future__ import annotations

import itertools
import re

import pytest

from constraintc.cli import main
from constraintc.compile import compile_cnf
from constraintc.errors import ConstraintcError, OptionError
from constraintc.language import RulesError, load_rules, parse_rules
from constraintc.language import parser as parser_module
from constraintc.language.diagnostics import MAX_SHOWN
from constraintc.language.parser import MAX_NESTING, MAX_WHOLE_NUMBER
from constraintc.logic import ground

BROKEN_LINES = [
    "rule r: p(X) &", "rule s: forall X p(X)", "query q(X)", "given e(X: node",
    "rule t: X", "define d(X: node) = p(X)", "param k = ", "rule u: p(X) => q(X)",
]


def positions(err: RulesError) -> list[tuple[int, int]]:
    return [(d.span.line, d.span.column) for d in err.diagnostics]


def test_fifty_thousand_broken_lines_are_checked_in_linear_time(monkeypatch):
    """Error recovery parses each statement once: the parser reads about as many characters as
    the file holds (it used to re-read the whole file for each broken statement: quadratic)."""
    text = "\n".join(BROKEN_LINES[i % len(BROKEN_LINES)] for i in range(50_000)) + "\n"
    real = parser_module.rules_parser()
    fed = [0]

    class Counting:
        def __getattr__(self, name):
            return getattr(real, name)

        def parse(self, chunk, *args, **kwargs):
            fed[0] += len(chunk)
            return real.parse(chunk, *args, **kwargs)

    monkeypatch.setattr(parser_module, "rules_parser", lambda: Counting())
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="broken.rules")
    err = info.value
    assert len(err.diagnostics) == 50_000  # one syntax error per statement
    assert fed[0] <= 2 * len(text) + 10_000  # the text once, each statement once (+ the catalogue)
    lines = [d.span.line for d in err.diagnostics]
    assert lines == sorted(lines) and lines[0] == 1 and lines[-1] == 50_000
    message = str(err)
    assert f"... {50_000 - MAX_SHOWN} more errors not shown" in message
    assert message.endswith("50000 errors in broken.rules")
    assert len(message.splitlines()) < 4 * MAX_SHOWN  # shown capped; all kept in diagnostics
    assert err.format(None).count("error:") == 50_000


def test_check_shows_every_error_with_max_errors_0(tmp_path, capsys):
    path = tmp_path / "many.rules"
    path.write_text("\n".join(BROKEN_LINES[i % 8] for i in range(300)) + "\n")
    assert main(["check", str(path)]) == 1
    assert capsys.readouterr().err.count(": error:") == MAX_SHOWN
    assert main(["check", "--max-errors", "0", str(path)]) == 1
    assert capsys.readouterr().err.count(": error:") == 300
    assert main(["check", "--max-errors", "-1", str(path)]) == 2
    assert "--max-errors=-1" in capsys.readouterr().err


def test_syntax_errors_no_longer_hide_semantic_errors():
    """All problems at once: fixing the two syntax errors must not reveal three new errors."""
    text = (
        "given edge(X: node, Y: node) where X != Y\n"
        "query causes(X: node, Y: node) where X != Y\n"
        "rule bad_syntax: forall X, Y causes(X, Y)\n"          # syntax: missing ':'
        "rule unknown: forall X, Y: cuases(X, Y)\n"            # semantic: unknown predicate
        "rule arity: forall X: causes(X)\n"                    # semantic: arity
        "rule unbound: forall X: causes(X, Y)\n"               # semantic: Y unbound
        "rule also_bad: forall X: causes(X, X) &&\n"            # syntax
    )
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="mixed.rules")
    by_line = {}
    for d in info.value.diagnostics:
        by_line.setdefault(d.span.line, []).append(d.message)
    assert sorted(by_line) == [3, 4, 5, 6, 7], str(info.value)
    assert "expected ':' after the quantified variables" in by_line[3][0]
    assert any("unknown predicate 'cuases'; did you mean 'causes'?" in m for m in by_line[4])
    assert by_line[5] == ["causes takes 2 arguments (X: node, Y: node), not 1"]
    assert by_line[6] == ["variable Y is not bound: quantify it (forall Y: ... or exists Y: ...)"]
    assert "write a single '&'" in by_line[7][0]


def test_a_broken_declaration_does_not_make_its_uses_unknown():
    """Uses of a predicate whose declaration has a syntax error are echoes: not reported."""
    text = ("query causes(X, Y: node)\n"                     # syntax: X has no type
            "param k = \n"                                   # syntax: no value
            "domain s = subsets of node up to k\n"
            "rule r: forall X, Y: causes(X, Y)\n"
            "rule z: forall X: nosuch(X)\n")                 # a real unknown predicate
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="decl.rules")
    messages = [d.message for d in info.value.diagnostics]
    assert positions(info.value)[:2] == [(1, 15), (2, 10)], messages  # the two syntax errors
    assert not any("'causes'" in m or "parameter 'k'" in m for m in messages), messages
    assert any("unknown predicate 'nosuch'" in m for m in messages), messages


def test_non_utf8_bytes_are_reported_at_line_and_column(tmp_path, capsys):
    path = tmp_path / "latin1.rules"
    path.write_bytes("query p(X: node)\nrule r: forall X: p(X) # café\n".encode("latin-1")
                     + b"rule s:\n   \xff\xfe p(X)\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:29: error: this byte (0xe9) is not UTF-8 text" in err
    assert f"{path}:4:4: error: this byte (0xff) is not UTF-8 text" in err
    assert "position" not in err and "Traceback" not in err and "codec" not in err


def test_a_binary_file_is_refused_quickly_with_a_bounded_message(tmp_path, capsys):
    path = tmp_path / "model.rules"
    path.write_bytes(bytes(range(256)) * 400)  # 100 kB of every byte value
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and "more places are not UTF-8 text" in err
    assert len(err) < 100_000


def test_byte_order_mark_is_accepted(tmp_path, capsys):
    path = tmp_path / "bom.rules"
    path.write_bytes(b"\xef\xbb\xbfquery p(X: node)\r\nrule r: forall X: p(X)\r\n")
    assert main(["check", str(path)]) == 0
    assert load_rules(path).rules["r"].span.line == 2
    path.write_bytes(b"\xef\xbb\xbfrule r: forall X: q(X)\n")
    assert main(["check", str(path)]) == 1
    assert f"{path}:1:19: error: unknown predicate 'q'" in capsys.readouterr().err  # column of q


def test_nul_and_control_bytes_are_located_and_shown_visibly(tmp_path, capsys):
    path = tmp_path / "nul.rules"
    path.write_bytes(b"query p(X: node)\nrule r: forall X:\x00 p(X)\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:18: error: unexpected character" in err
    assert "\x00" not in err and "\u2400" in err  # the NUL is shown as the symbol for NUL


@pytest.mark.parametrize("template", [
    "param k = {n}",
    "domain s = subsets of node up to {n}",
    "query p(X: node)\nrule r: atmost {n} X: p(X)",
    "query p(X: node)\ndefine d(X: node) unroll {n} := p(X)",
])
def test_huge_integer_literals_are_a_clean_error(template):
    digits = "9" * 4301
    text = template.format(n=digits)
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="big.rules")
    diag = info.value.diagnostics[0]
    line = text.splitlines()[diag.span.line - 1]
    assert line[diag.span.column - 1:].startswith("9999")
    assert "number too large (4301 digits)" in diag.message
    assert str(MAX_WHOLE_NUMBER) in diag.message


def test_largest_whole_number_is_accepted_and_one_more_is_not():
    assert parse_rules(f"param k = {MAX_WHOLE_NUMBER}").params["k"] == MAX_WHOLE_NUMBER
    assert parse_rules(f"param k = 000{MAX_WHOLE_NUMBER}").params["k"] == MAX_WHOLE_NUMBER
    with pytest.raises(RulesError, match="number too large"):
        parse_rules(f"param k = {MAX_WHOLE_NUMBER + 1}")


@pytest.mark.parametrize("value", ["9" * 5000, "²", "1e3", "-1"])
def test_huge_or_odd_param_options_are_a_clean_error(value, capsys):
    assert main(["check", "dsep", "--param", f"cond_size={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --param=") and "Traceback" not in err and len(err) < 300


@pytest.mark.parametrize("op,count", [("|", lambda k: 2**k - 1), ("&", lambda k: 1)])
def test_a_500_term_formula_is_accepted_and_exact(op, count):
    """Wide formulas are flat lists, not nesting: 500 terms parse, ground and count exactly."""
    k = 500
    decls = "".join(f"query q{i}(X: node)\n" for i in range(k))
    text = decls + f"rule wide: forall X: {f' {op} '.join(f'q{i}(X)' for i in range(k))}\n"
    program = parse_rules(text, filename="wide.rules")
    formula = program.rules["wide"].formula.body
    assert len(formula.args) == k
    compiled = compile_cnf(ground(program, 1).cnf)
    assert compiled.stats["model_count"] == count(k)


def test_a_wide_formula_matches_brute_force():
    """A 12-term mixed & / | formula grounds to exactly the assignments that satisfy it."""
    k = 12
    decls = "".join(f"query q{i}(X: node)\n" for i in range(k))
    terms = [f"q{i}(X)" for i in range(k)]
    body = " | ".join(f"{a} & ~{b}" for a, b in zip(terms[::2], terms[1::2]))
    program = parse_rules(decls + f"rule r: forall X: {body}\n")
    expected = sum(any(bits[i] and not bits[i + 1] for i in range(0, k, 2))
                   for bits in itertools.product((False, True), repeat=k))
    assert compile_cnf(ground(program, 1).cnf).stats["model_count"] == expected


def nested(kind: str, depth: int) -> str:
    if kind == "not":
        return "~" * depth + "p(X)"
    if kind == "implies":
        return " -> ".join(["p(X)"] * depth)
    if kind == "parenthesized and":
        return "(p(X) & " * depth + "p(X)" + ")" * depth
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["not", "implies", "parenthesized and"])
def test_deep_nesting_below_the_limit_grounds_exactly(kind):
    depth = MAX_NESTING - 10
    program = parse_rules(f"query p(X: node)\nrule r: forall X: {nested(kind, depth)}\n")
    count = compile_cnf(ground(program, 2).cnf).stats["model_count"]
    # forall X: ~^d p(X) (d even): p(X) on both nodes; p -> p -> ... -> p: true; p & (p & ...): p
    assert depth % 2 == 0
    assert count == {"not": 1, "implies": 4, "parenthesized and": 1}[kind]


@pytest.mark.parametrize("kind", ["not", "implies", "parenthesized and"])
def test_too_deep_nesting_is_reported_where_it_gets_too_deep(kind):
    text = f"query p(X: node)\n\nrule r: forall X: {nested(kind, 5 * MAX_NESTING)}\nrule s: q(X)\n"
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="deep.rules")
    first = info.value.diagnostics[0]
    assert first.span.line == 3 and first.span.column > 20
    assert f"nests more than {MAX_NESTING} levels deep" in first.message
    # the file's other errors are reported with it
    assert any("unknown predicate 'q'" in d.message for d in info.value.diagnostics)


def test_very_deep_parentheses_do_not_crash_the_parser():
    text = "query p(X: node)\nrule r: forall X: " + "(" * 5_000 + "p(X)" + ")" * 5_000 + "\n"
    program = parse_rules(text)  # parentheses alone build no nesting
    assert program.rules["r"].formula.body.pred == "p"
    with pytest.raises(RulesError, match=r"deep\.rules:2:"):
        parse_rules(text.replace("p(X))", "p(X) &)", 1), filename="deep.rules")


def test_errors_in_a_file_with_other_line_separators_point_at_the_right_line():
    """Only newlines end lines (as the parser counts): a form feed or U+2028 does not shift the
    caret line of later errors."""
    text = "query p(X: node)\x0c\nrule r: forall X: p(X) \u2028\nrule s: q(X)\n"
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="sep.rules")
    rendered = str(info.value)
    for diag in info.value.diagnostics:
        shown = re.search(rf"sep\.rules:{diag.span.line}:{diag.span.column}: .*\n    (.*)\n", rendered)
        assert shown is not None
        assert shown.group(1).strip() == text.split("\n")[diag.span.line - 1].replace(
            "\x0c", "\u240c").strip()


def test_oversized_rules_file_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    from constraintc.language import source

    path = tmp_path / "huge.rules"
    path.write_text("# " + "x" * 2000 + "\n")
    monkeypatch.setattr(source, "MAX_RULES_BYTES", 1000)
    with pytest.raises(ConstraintcError, match="too large for a rules file"):
        load_rules(path)


def test_param_option_errors_name_the_option():
    from constraintc.cli.options import parse_params

    with pytest.raises(OptionError, match="--param"):
        parse_params(["k=" + "1" * 30])
    assert parse_params(["k=007"]) == {"k": 7}
