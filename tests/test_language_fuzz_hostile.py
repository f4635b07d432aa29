"""Property-based fuzzing of the front end with hostile bytes: no input may end in a traceback.

Mutation classes (the issue's): random bytes, non-UTF-8 bytes, NUL bytes, deeply nested and very
wide formulas, huge integer literals, truncated files, byte-level mutations of the library's
valid files, and byte-order marks / CRLF line ends. Each input goes through what
``constraintc check`` does with a file's bytes (decode, parse, check, the false-rule probe),
in process. Every outcome must be a Program or a ConstraintcError whose diagnostics lie inside
the file; the count of inputs is printed.

The suite runs ``CONSTRAINTC_FUZZ_EXAMPLES`` inputs (default 400, a few seconds); the
10,000-input figure of docs/reliability.md comes from
``CONSTRAINTC_FUZZ_EXAMPLES=10000 pytest tests/test_language_fuzz_hostile.py -s``.
"""

from __future__ import annotations

import os
import random
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constraintc.cli import main
from constraintc.errors import ConstraintcError
from constraintc.language import Program, RulesError, parse_rules
from constraintc.language.source import decode_source
from constraintc.resources import library_rules

EXAMPLES = int(os.environ.get("CONSTRAINTC_FUZZ_EXAMPLES", "400"))
LIBRARY = [p.read_bytes() for p in library_rules()]
HEAD = b"query p(X: node)\nquery q(X: node)\n"


def bytes_at(draw, data: bytes) -> int:
    return draw(st.integers(0, len(data)))


@st.composite
def random_bytes(draw):
    return draw(st.binary(max_size=400))


@st.composite
def non_utf8(draw):
    data = draw(st.sampled_from(LIBRARY))
    for _ in range(draw(st.integers(1, 5))):
        i = bytes_at(draw, data)
        bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xe2\x82", b"\x80\x80",
                                    b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe9"]))
        data = data[:i] + bad + data[i:]
    return data


@st.composite
def nul_bytes(draw):
    data = draw(st.sampled_from(LIBRARY))
    for _ in range(draw(st.integers(1, 4))):
        i = bytes_at(draw, data)
        data = data[:i] + draw(st.sampled_from([b"\x00", b"\x00" * 10, b"\x1b[2J", b"\x7f"])) + data[i:]
    return data


@st.composite
def deep_formula(draw):
    depth = draw(st.integers(1, 450))
    kind = draw(st.sampled_from(["not", "paren", "implies", "and", "iff", "forall", "setadd", "count"]))
    if kind == "not":
        body = "~" * depth + "p(X)"
    elif kind == "paren":
        body = "(" * depth + "p(X)" + ")" * draw(st.sampled_from([depth, depth - 1, depth + 1]))
    elif kind == "implies":
        body = " -> ".join(["p(X)"] * depth)
    elif kind == "and":
        body = "(p(X) & " * depth + "q(X)" + ")" * depth
    elif kind == "iff":
        body = "(p(X) <-> " * depth + "q(X)" + ")" * depth
    elif kind == "forall":
        body = "".join(f"forall X{i}: " for i in range(depth)) + "p(X)"
    elif kind == "setadd":
        return (b"param k = 2\ndomain s = subsets of node up to k\nquery r(X: node, S: s)\n"
                b"rule r: forall X, S: r(X, S" + b" + X" * depth + b")\n")
    else:
        body = "atmost 1 {" * depth + "p(X)" + "}" * depth
    return HEAD + f"rule r: forall X: {body}\n".encode()


@st.composite
def wide_formula(draw):
    width = draw(st.integers(1, 1000))
    op = draw(st.sampled_from([" | ", " & ", ", "]))
    # the terms from a drawn seed: a thousand separate draws would make generation the cost
    rng = random.Random(draw(st.integers(0, 2**32)))
    terms = op.join(rng.choice(["p(X)", "q(X)", "~p(X)", "X = X"]) for _ in range(width))
    if op == ", ":
        terms = "exactly 1 {" + terms + "}"
    return HEAD + f"rule r: forall X: {terms}\n".encode()


@st.composite
def huge_literal(draw):
    digits = draw(st.sampled_from(["9", "1", "0"])) * draw(st.integers(15, 6000))
    template = draw(st.sampled_from([
        b"param k = %s\n", b"domain s = subsets of node up to %s\n",
        HEAD + b"rule r: atmost %s X: p(X)\n", HEAD + b"define d(X: node) unroll %s := p(X)\n",
        HEAD + b"rule r: exactly %s {p(X), q(X)}\n",
    ]))
    return template % digits.encode()


@st.composite
def truncated(draw):
    data = draw(st.sampled_from(LIBRARY))
    return data[:bytes_at(draw, data)]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(LIBRARY)))
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "swap"]))
        if op == "flip" and i < len(data):
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 40))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "duplicate":
            j = min(len(data), i + draw(st.integers(1, 80)))
            data[j:j] = data[i:j]
        elif i + 1 < len(data):
            data[i], data[i + 1] = data[i + 1], data[i]
    return bytes(data)


@st.composite
def bom_and_line_ends(draw):
    data = draw(st.sampled_from(LIBRARY))
    if draw(st.booleans()):
        data = data.replace(b"\n", draw(st.sampled_from([b"\r\n", b"\r", b"\n\r"])))
    return draw(st.sampled_from([b"\xef\xbb\xbf", b"", b"\xef\xbb", b"\xfe\xff"])) + data


CLASSES = {
    "random bytes": random_bytes(), "non-UTF-8": non_utf8(), "NUL and control": nul_bytes(),
    "deep formula": deep_formula(), "wide formula": wide_formula(), "huge literal": huge_literal(),
    "truncated": truncated(), "mutated": mutated(), "BOM/line ends": bom_and_line_ends(),
}


def check_bytes(data: bytes) -> str:
    """What `constraintc check` does with a file's bytes; returns 'ok' or 'error'."""
    try:
        text = decode_source(data, "fuzz.rules")
        program = parse_rules(text, filename="fuzz.rules")
    except RulesError as err:
        lines = (err.source.count("\n") + 1) if err.source else 1
        for d in err.diagnostics:
            assert 1 <= d.span.line <= lines + 1 and d.span.column >= 1, (d, lines)
        message = str(err)
        assert message.startswith("fuzz.rules:") and ": error: " in message
        assert "nests formulas too deeply to process" not in message  # the depth limit came first
        return "error"
    except ConstraintcError as err:
        assert str(err).startswith("error:") or ": error: " in str(err), str(err)
        return "error"
    assert isinstance(program, Program)
    return "ok"


def test_no_traceback_in_generated_hostile_inputs(capsys):
    seen: Counter = Counter()
    outcomes: Counter = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.sampled_from(sorted(CLASSES)).flatmap(lambda k: st.tuples(st.just(k), CLASSES[k])))
    def run(case):
        kind, data = case
        outcomes[check_bytes(data)] += 1
        seen[kind] += 1

    run()
    total = sum(seen.values())
    with capsys.disabled():
        print(f"\n[fuzz] {total} generated hostile inputs, 0 tracebacks "
              f"({outcomes['ok']} valid programs, {outcomes['error']} clean errors); per class: "
              + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
    assert total >= EXAMPLES and len(seen) == len(CLASSES)


@settings(max_examples=max(EXAMPLES // 10, 20), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["non-UTF-8", "NUL and control", "mutated", "huge literal", "random bytes"])
       .flatmap(lambda k: CLASSES[k]))
def test_the_check_command_never_prints_a_traceback(tmp_path_factory, data):
    """The same inputs as files through `constraintc check` (reading, decoding, printing)."""
    path = tmp_path_factory.mktemp("fuzz") / "input.rules"
    path.write_bytes(data)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", "--no-probe", str(path)])
    assert code in (0, 1), (code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    if code == 1:
        assert err.getvalue().startswith(f"{path}:")
