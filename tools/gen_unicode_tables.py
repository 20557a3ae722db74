#!/usr/bin/env python3
"""Generates include/nexa/io/unicode_tables.hpp from this Python's unicodedata.

The tables are what nexa's WordPiece tokenizer (include/nexa/io/wordpiece.hpp) needs to match
Hugging Face's BertTokenizer, which is written in Python on top of unicodedata and str methods:
  - general-category range tables: C* (control, format, surrogate, private use, unassigned), Zs,
    Mn, P*;
  - str.isspace() (what str.split() splits on);
  - str.lower(): single code point mappings as runs, the multi-code-point ones apart, and the
    Cased / Case_Ignorable sets that decide the final-sigma rule (derived by probing str.lower so
    that they are exactly what this Python applies);
  - canonical combining classes, one-level canonical decompositions and the primary composites
    (for NFD and NFC; Hangul syllables are algorithmic and not listed).

  python3 tools/gen_unicode_tables.py [OUTPUT]   (default: include/nexa/io/unicode_tables.hpp)
Uses only the standard library; the header names the Python and Unicode versions it came from.
"""
import os
import sys
import unicodedata as ud

MAX_CP = 0x10FFFF
CODE_POINTS = [c for c in range(MAX_CP + 1) if not 0xD800 <= c <= 0xDFFF]
SIGMA = "\u03a3"


def ranges(pred, include_surrogates=False):
    out, start, prev = [], None, None
    cps = range(MAX_CP + 1) if include_surrogates else CODE_POINTS
    for c in cps:
        if pred(c):
            if start is not None and c == prev + 1:
                prev = c
                continue
            if start is not None:
                out.append((start, prev))
            start = prev = c
    if start is not None:
        out.append((start, prev))
    return out


def category(c):
    return ud.category(chr(c))


def lower_runs():
    """Single-code-point lower-case mappings as (first, last, delta, step) runs."""
    single = [(c, ord(chr(c).lower()) - c) for c in CODE_POINTS if chr(c).lower() != chr(c) and len(chr(c).lower()) == 1]
    runs, i = [], 0
    while i < len(single):
        best = (i, 1)
        for step in (1, 2):
            j = i
            while j + 1 < len(single) and single[j + 1][0] == single[j][0] + step and single[j + 1][1] == single[i][1]:
                j += 1
            if j > best[0]:
                best = (j, step)
        j, step = best
        runs.append((single[i][0], single[j][0], single[i][1], step if j > i else 1))
        i = j + 1
    # Check the runs reproduce the mapping exactly.
    mapped = {}
    for first, last, delta, step in runs:
        for c in range(first, last + 1, step):
            mapped[c] = c + delta
    assert mapped == {c: c + d for c, d in single}
    return runs


def lower_multi():
    return [(c, [ord(x) for x in chr(c).lower()]) for c in CODE_POINTS if len(chr(c).lower()) > 1]


def sigma_sets():
    """Cased and Case_Ignorable as str.lower's final-sigma rule sees them.

    "<c>Σ" lowers to a final sigma iff c is not case-ignorable and cased; "A<c>Σ" iff c is
    case-ignorable or (not case-ignorable and cased). Chars both cased and case-ignorable are
    skipped by the rule, so only their case-ignorable property matters."""
    final = "\u03c2"
    cased, ignorable = set(), set()
    for c in CODE_POINTS:
        x = (chr(c) + SIGMA).lower().endswith(final)
        y = ("A" + chr(c) + SIGMA).lower().endswith(final)
        if x:
            cased.add(c)
        elif y:
            ignorable.add(c)
    return cased, ignorable


def decompositions():
    """One-level canonical decompositions (cp, first, second or 0) and the primary composites."""
    table = []
    for c in CODE_POINTS:
        d = ud.decomposition(chr(c))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        assert 1 <= len(parts) <= 2
        table.append((c, parts[0], parts[1] if len(parts) == 2 else 0))
    # A two-code-point decomposition is a primary composite unless NFC leaves it decomposed
    # (Full_Composition_Exclusion).
    composites = sorted(
        (i for i, (c, a, b) in enumerate(table) if b and ud.normalize("NFC", chr(c)) == chr(c)),
        key=lambda i: (table[i][1], table[i][2]),
    )
    assert len(table) < 65536
    return table, composites


def emit_rows(items, fmt, width=118):
    """Formatted items, filled into lines of at most `width` characters."""
    lines, line = [], "   "
    for x in items:
        text = fmt(x)
        if len(line) + 1 + len(text) > width:
            lines.append(line)
            line = "   "
        line += " " + text
    if line.strip():
        lines.append(line)
    return "\n".join(lines)


def hx(c):
    return f"0x{c:X}"


def range_table(name, rs, comment):
    body = emit_rows(rs, lambda r: f"{{{hx(r[0])},{hx(r[1])}}},")
    return f"// {comment} ({len(rs)} ranges)\ninline constexpr Range {name}[] = {{\n{body}\n}};\n"


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "include", "nexa", "io", "unicode_tables.hpp")
    py = ".".join(str(x) for x in sys.version_info[:3])
    parts = []
    parts.append(range_table("category_c", ranges(lambda c: category(c).startswith("C"), True),
                             "General category C* (Cc, Cf, Cs, Co, Cn), surrogates included"))
    parts.append(range_table("category_zs", ranges(lambda c: category(c) == "Zs"), "General category Zs"))
    parts.append(range_table("category_mn", ranges(lambda c: category(c) == "Mn"), "General category Mn"))
    parts.append(range_table("category_p", ranges(lambda c: category(c).startswith("P")),
                             "General category P* (Pc, Pd, Ps, Pe, Pi, Pf, Po)"))
    parts.append(range_table("python_space", ranges(lambda c: chr(c).isspace()),
                             "str.isspace(): what str.split() and str.strip() treat as whitespace"))
    cased, ignorable = sigma_sets()
    parts.append(range_table("cased", ranges(lambda c: c in cased),
                             "Cased and not Case_Ignorable (the final-sigma rule looks past Case_Ignorable)"))
    parts.append(range_table("case_ignorable", ranges(lambda c: c in ignorable), "Case_Ignorable"))

    runs = lower_runs()
    body = emit_rows(runs, lambda r: f"{{{hx(r[0])},{hx(r[1])},{r[2]},{r[3]}}},")
    parts.append(f"// str.lower() of one code point: first, first + step, ..., last map to cp + delta "
                 f"({len(runs)} runs)\ninline constexpr LowerRun lower_runs[] = {{\n{body}\n}};\n")
    multi = lower_multi()
    assert all(len(m) <= 3 for _, m in multi)
    body = emit_rows(multi, lambda m: "{" + hx(m[0]) + ",{" + ",".join(hx(x) for x in m[1]) + "}},")
    parts.append(f"// str.lower() mappings to more than one code point (final sigma aside)\n"
                 f"inline constexpr LowerMulti lower_multi[] = {{\n{body}\n}};\n")

    ccc = []
    for c in CODE_POINTS:
        k = ud.combining(chr(c))
        if not k:
            continue
        if ccc and ccc[-1][1] == c - 1 and ccc[-1][2] == k:
            ccc[-1] = (ccc[-1][0], c, k)
        else:
            ccc.append((c, c, k))
    body = emit_rows(ccc, lambda r: f"{{{hx(r[0])},{hx(r[1])},{r[2]}}},")
    parts.append(f"// Canonical combining class, where it is not 0 ({len(ccc)} ranges)\n"
                 f"inline constexpr CccRange combining_class[] = {{\n{body}\n}};\n")

    table, composites = decompositions()
    body = emit_rows(table, lambda d: f"{{{hx(d[0])},{hx(d[1])},{hx(d[2])}}},")
    parts.append(f"// One-level canonical decompositions, sorted by code point (second == 0: a singleton; "
                 f"Hangul syllables are algorithmic) ({len(table)} entries)\n"
                 f"inline constexpr Decomposition decompositions[] = {{\n{body}\n}};\n")
    body = emit_rows(composites, lambda i: f"{i},")
    parts.append(f"// Primary composites: indices into decompositions[], sorted by (first, second) "
                 f"({len(composites)} entries)\ninline constexpr std::uint16_t composites[] = {{\n{body}\n}};\n")

    header = f"""#pragma once
// GENERATED by tools/gen_unicode_tables.py from Python {py}'s unicodedata (Unicode {ud.unidata_version}).
// Do not edit; rerun the script. Code points are char32_t; every table is sorted by code point.
// clang-format off
#include <cstdint>

namespace nexa::unicode::tables {{

inline constexpr char python_version[] = "{py}";
inline constexpr char unicode_version[] = "{ud.unidata_version}";

struct Range {{ char32_t first, last; }};
struct LowerRun {{ char32_t first, last; std::int32_t delta; std::uint8_t step; }};
struct LowerMulti {{ char32_t cp; char32_t to[3]; }};
struct CccRange {{ char32_t first, last; std::uint8_t ccc; }};
struct Decomposition {{ char32_t cp, first, second; }};

""" + "\n".join(parts) + """
}  // namespace nexa::unicode::tables
// clang-format on
"""
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(header)
    print(f"wrote {os.path.normpath(out_path)} ({len(header)} bytes)")


if __name__ == "__main__":
    main()
