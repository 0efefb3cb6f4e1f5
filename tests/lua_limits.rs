//! Bounds: the reader accepts exactly what Lua 5.1's compiler accepts (nesting, registers,
//! constants) and survives anything larger without crashing.

use proptest::prelude::*;
use svsync::lua::{ErrorCode, MAX_CONSTANTS, parse};

use crate::support::{lua51_globals, our_globals};

/// Asserts that svsync and Lua 5.1 agree on accepting `src`, and on the values when both do.
fn agree(src: &str) -> bool {
    let lua = lua51_globals(src.as_bytes());
    let ours = our_globals(src.as_bytes());
    match (&lua, &ours) {
        (Ok(l), Ok(o)) => assert_eq!(l, o, "values differ for {}", preview(src)),
        (Err(_), Err(e)) => assert!(
            e.code.is_bound() || e.code == ErrorCode::Unexpected,
            "{e:?}"
        ),
        _ => panic!(
            "Lua 5.1 says {:?}, svsync says {:?} for {}",
            lua.as_ref().map(|_| ()),
            ours.as_ref().map(|_| ()),
            preview(src)
        ),
    }
    lua.is_ok()
}

fn preview(src: &str) -> String {
    if src.len() > 300 {
        format!(
            "{}...{} ({} bytes)",
            &src[..150],
            &src[src.len() - 150..],
            src.len()
        )
    } else {
        src.to_string()
    }
}

fn distinct_constants(n: usize) -> String {
    (0..n).map(|i| format!("[\"k{i}\"]=1,")).collect()
}

#[test]
fn nesting_boundary_matches_lua() {
    for prefix in [0, 300] {
        for depth in 195..=201 {
            let keys = distinct_constants(prefix);
            let with_value = format!(
                "X = {{{keys}{}{{1}}{}}}",
                "{".repeat(depth - 2),
                "}".repeat(depth - 2)
            );
            let empty = format!(
                "X = {{{keys}{}{}}}",
                "{".repeat(depth - 1),
                "}".repeat(depth - 1)
            );
            let keyed = format!(
                "X = {{{keys}{}{}}}",
                (0..depth - 1)
                    .map(|i| format!("[\"z{i}\"]={{"))
                    .collect::<String>(),
                "}".repeat(depth - 1)
            );
            // `-1` is a unary operator on a value: one syntax level more than `1`.
            let negative = format!(
                "X = {{{keys}{}{{-1, [-2] = 3}}{}}}",
                "{".repeat(depth - 2),
                "}".repeat(depth - 2)
            );
            agree(&with_value);
            agree(&empty);
            agree(&keyed);
            let accepted = agree(&negative);
            // The boundaries of the standalone `lua5.1 FILE`: tables down to 197 levels, a
            // negative number down to 196.
            assert_eq!(accepted, depth <= 196, "a negative number at depth {depth}");
            assert_eq!(agree(&empty), depth <= 198, "empty tables at depth {depth}");
        }
    }
}

#[test]
fn keyed_nesting_after_256_constants_costs_two_registers() {
    // With more than 256 constants, each `["k"] = {` keeps its key in a register.
    let keys = distinct_constants(300);
    let nested = |n: usize| {
        format!(
            "X = {{{keys}{}{}}}",
            (0..n).map(|i| format!("[\"z{i}\"]={{")).collect::<String>(),
            "}".repeat(n)
        )
    };
    assert!(agree(&nested(124)));
    assert!(!agree(&nested(125)));
    let err = parse(nested(125).as_bytes()).unwrap_err();
    assert_eq!(err.code, ErrorCode::TooComplex);
    assert!(err.message.contains("registers"), "{}", err.message);
}

#[test]
fn pending_array_items_are_bounded_like_lua() {
    for (levels, items) in [
        (5, 48),
        (5, 49),
        (10, 23),
        (10, 24),
        (12, 19),
        (12, 20),
        (50, 3),
        (50, 4),
    ] {
        let mut src = "X = ".to_string();
        for _ in 0..levels {
            src.push('{');
            src.push_str(&"1,".repeat(items));
        }
        src.push_str("{}");
        src.push_str(&"}".repeat(levels));
        agree(&src);
    }
}

#[test]
fn constant_limit_matches_lua() {
    // The global's name is one constant; then n distinct strings.
    for n in [MAX_CONSTANTS as usize - 1, MAX_CONSTANTS as usize] {
        let items: Vec<String> = (0..n).map(|i| format!("\"s{i}\"")).collect();
        let src = format!("X = {{{}}}", items.join(","));
        let accepted = agree(&src);
        assert_eq!(accepted, n < MAX_CONSTANTS as usize);
        if !accepted {
            let err = parse(src.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::TooManyConstants);
            assert!(err.message.contains("262143"));
        }
    }
}

#[test]
fn hundred_thousand_open_braces_are_refused_not_a_crash() {
    let src = format!("X = {}", "{".repeat(100_000));
    let err = parse(src.as_bytes()).unwrap_err();
    assert_eq!(err.code, ErrorCode::TooDeep);
    assert!(err.message.contains("197 levels"), "{}", err.message);
    // Closed, and in a key position: still the same bound.
    let src = format!("X = {}{}", "{".repeat(100_000), "}".repeat(100_000));
    assert_eq!(parse(src.as_bytes()).unwrap_err().code, ErrorCode::TooDeep);
    let src = format!("X = {}", "{[1]=".repeat(100_000));
    assert_eq!(parse(src.as_bytes()).unwrap_err().code, ErrorCode::TooDeep);
}

#[test]
fn huge_long_bracket_levels_are_linear() {
    let eq = "=".repeat(1_000_000);
    let src = format!("X = [{eq}[body]{eq}]");
    assert!(parse(src.as_bytes()).is_ok());
    let src = format!("X = [{eq}[body]{eq}=]");
    assert_eq!(
        parse(src.as_bytes()).unwrap_err().code,
        ErrorCode::UnfinishedLongBracket
    );
}

/// A random table shape: array items, keyed items and nested tables at every level.
#[derive(Debug, Clone)]
enum Shape {
    Leaf(u8),
    Table(Vec<(bool, Shape)>),
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = (0u8..6).prop_map(Shape::Leaf);
    leaf.prop_recursive(40, 400, 60, |inner| {
        prop::collection::vec((any::<bool>(), inner), 0..60).prop_map(Shape::Table)
    })
}

fn render(shape: &Shape, out: &mut String, counter: &mut usize) {
    match shape {
        Shape::Leaf(kind) => {
            *counter += 1;
            match kind {
                0 => out.push_str(&format!("\"s{counter}\"")),
                1 => out.push_str(&format!("{}", *counter as f64 / 8.0)),
                2 => out.push_str("true"),
                3 => out.push_str("\"same\""),
                4 => out.push_str(&format!("-{counter}")),
                _ => out.push_str("false"),
            }
        }
        Shape::Table(fields) => {
            out.push('{');
            for (keyed, value) in fields {
                if *keyed {
                    *counter += 1;
                    out.push_str(&format!("[\"f{counter}\"]="));
                }
                render(value, out, counter);
                out.push(',');
            }
            out.push('}');
        }
    }
}

/// Deepens a shape by wrapping it, to reach the nesting and register bounds more often.
fn wrap(shape: Shape, levels: usize, items: usize) -> Shape {
    let mut s = shape;
    for _ in 0..levels {
        let mut fields: Vec<(bool, Shape)> =
            (0..items).map(|i| (i % 3 == 0, Shape::Leaf(1))).collect();
        fields.push((false, s));
        s = Shape::Table(fields);
    }
    s
}

#[test]
fn random_shapes_agree_with_lua() {
    use proptest::test_runner::{Config, TestRunner};
    let strategy = (
        shape(),
        prop::sample::select(vec![0usize, 250, 300]),
        0usize..200,
        0usize..12,
    );
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let accepted = std::cell::Cell::new(0);
    let refused = std::cell::Cell::new(0);
    runner
        .run(&strategy, |(s, prefix, levels, items)| {
            let mut body = String::new();
            let mut counter = 0;
            render(&wrap(s, levels, items), &mut body, &mut counter);
            let src = format!("P = {{{}}}\nX = {body}\n", distinct_constants(prefix));
            let cell = if agree(&src) { &accepted } else { &refused };
            cell.set(cell.get() + 1);
            Ok(())
        })
        .unwrap();
    // Both sides of the bounds must be exercised for the comparison to mean anything.
    assert!(
        accepted.get() > 30 && refused.get() > 30,
        "accepted {}, refused {}",
        accepted.get(),
        refused.get()
    );
}
