//! The reader, writer and splice against the references: a real Lua 5.1 (mlua, vendored) for
//! what a file means, full_moon for how it is structured.

use std::path::Path;

use full_moon::ast::{Expression, Field as FmField, Stmt, UnOp, Var};
use proptest::prelude::*;
use svsync::lua::{
    FieldKey, Indent, Key, KeyPath, Kind, Layout, LineEnding, LuaValue, Node, Number, Table, parse,
    splice, write_file,
};

use crate::support::{
    broken_files, loadable_files, lua51_globals, on_big_stack, ordered_globals, our_globals,
    refused_on_purpose,
};

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn every_sample_reads_as_lua51_loads_it() {
    for path in loadable_files() {
        let src = read(&path);
        let lua =
            lua51_globals(&src).unwrap_or_else(|e| panic!("{}: Lua 5.1: {e}", path.display()));
        let ours = our_globals(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(ours, lua, "{}", path.display());
        assert!(!ours.is_empty(), "{}", path.display());
    }
}

#[test]
fn broken_files_are_refused_on_the_line_lua_reports() {
    for path in broken_files() {
        let src = read(&path);
        let lua = lua51_globals(&src).expect_err("Lua 5.1 refuses the broken samples");
        let ours = svsync::lua::parse(&src).expect_err("svsync refuses them too");
        let line = ours.position(&src).line;
        assert!(
            lua.contains(&format!("file:{line}:")),
            "Lua: {lua}; svsync: line {line}"
        );
    }
}

fn layouts() -> [Layout; 4] {
    let mut out = [Layout::default(); 4];
    let mut i = 0;
    for indent in [Indent::Tabs, Indent::Flat] {
        for line_ending in [LineEnding::Lf, LineEnding::CrLf] {
            out[i] = Layout {
                indent,
                line_ending,
            };
            i += 1;
        }
    }
    out
}

#[test]
fn round_trip_through_the_writer_in_every_layout() {
    for path in loadable_files() {
        let src = read(&path);
        let expected = our_globals(&src).unwrap();
        let globals = ordered_globals(&src);
        let refs: Vec<(&str, Option<&LuaValue>)> = globals
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_ref()))
            .collect();
        for layout in layouts() {
            let written = write_file(&refs, layout).unwrap();
            assert_eq!(
                our_globals(&written).unwrap(),
                expected,
                "{} {layout:?}",
                path.display()
            );
            assert_eq!(
                lua51_globals(&written).unwrap(),
                expected,
                "{} {layout:?}",
                path.display()
            );
            assert_eq!(Layout::detect(&written).line_ending, layout.line_ending);
        }
    }
}

#[test]
fn writing_in_the_detected_layout_reproduces_client_files() {
    // Files the client wrote with all keys in the array-first order come back byte for byte.
    for name in [
        "WTF/Account/ALPHA/SavedVariables/GuildHelper.lua",
        "WTF/Account/CHARLIE/SavedVariables/GuildHelper.lua",
        "GuildHelper.mixed-shapes.lua",
    ] {
        let path = crate::support::testdata().join(name);
        let src = read(&path);
        let globals = ordered_globals(&src);
        let refs: Vec<(&str, Option<&LuaValue>)> = globals
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_ref()))
            .collect();
        let written = write_file(&refs, Layout::detect(&src)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&src),
            "{name}"
        );
    }
}

/// A value's structure and token texts, for comparing two parsers.
#[derive(Debug, PartialEq)]
enum Shape {
    Token(String),
    Table(Vec<(Option<Shape>, Shape)>),
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn our_shape(doc: &svsync::lua::Document<'_>, node: Node) -> Shape {
    match node.kind {
        Kind::Table { .. } => Shape::Table(
            doc.fields(node)
                .iter()
                .map(|f| {
                    let key = match f.key {
                        FieldKey::Positional => None,
                        FieldKey::Name(span) => Some(Shape::Token(latin1(doc.text(span)))),
                        FieldKey::Bracket(k) => {
                            Some(Shape::Table(vec![(None, our_shape(doc, doc.key_node(k)))]))
                        }
                    };
                    (key, our_shape(doc, f.value))
                })
                .collect(),
        ),
        Kind::Number { .. } => Shape::Token(doc.number_text(node).unwrap().into_owned()),
        _ => Shape::Token(latin1(doc.text(node.span))),
    }
}

fn fm_shape(e: &Expression) -> Shape {
    match e {
        Expression::TableConstructor(t) => Shape::Table(
            t.fields()
                .iter()
                .map(|f| match f {
                    FmField::NoKey(v) => (None, fm_shape(v)),
                    FmField::NameKey { key, value, .. } => {
                        (Some(Shape::Token(key.token().to_string())), fm_shape(value))
                    }
                    FmField::ExpressionKey { key, value, .. } => (
                        Some(Shape::Table(vec![(None, fm_shape(key))])),
                        fm_shape(value),
                    ),
                    other => panic!("unexpected field {other}"),
                })
                .collect(),
        ),
        Expression::UnaryOperator {
            unop: UnOp::Minus(_),
            expression,
        } => match fm_shape(expression) {
            Shape::Token(t) => Shape::Token(format!("-{t}")),
            other => panic!("minus before {other:?}"),
        },
        Expression::Number(t) | Expression::String(t) | Expression::Symbol(t) => {
            Shape::Token(t.token().to_string())
        }
        other => panic!("not data: {other}"),
    }
}

#[test]
fn full_moon_agrees_on_every_sample() {
    for path in loadable_files() {
        let src = read(&path);
        let doc = parse(&src).unwrap();
        let ours: Vec<(String, Shape)> = doc
            .globals()
            .iter()
            .map(|g| (latin1(doc.text(g.name)), our_shape(&doc, g.value)))
            .collect();
        // full_moon takes text; a Latin-1 reading maps every byte to one character, so binary
        // strings survive and token texts compare byte for byte.
        let text = latin1(&src);
        let theirs = on_big_stack(move || {
            let ast = full_moon::parse(&text).unwrap_or_else(|e| panic!("full_moon: {e:?}"));
            ast.nodes()
                .stmts()
                .map(|s| match s {
                    Stmt::Assignment(a) => {
                        let name = match a.variables().iter().next() {
                            Some(Var::Name(n)) => n.token().to_string(),
                            other => panic!("not a name: {other:?}"),
                        };
                        let value = a.expressions().iter().next().expect("one value");
                        (name, fm_shape(value))
                    }
                    other => panic!("not an assignment: {other}"),
                })
                .collect::<Vec<_>>()
        });
        assert!(ours == theirs, "{}: full_moon disagrees", path.display());
    }
}

fn sample_value() -> LuaValue {
    LuaValue::Table(Table::from_entries([
        (Key::str("roster"), LuaValue::Table(Table::new())),
        (
            Key::str("note"),
            LuaValue::str("multi\nline \"quoted\" \\ |cffff0000red|r \u{e9}"),
        ),
        (Key::int(1), LuaValue::Number(Number::new(0.1))),
        (Key::str("big"), LuaValue::Number(Number::new(1e300))),
    ]))
}

#[test]
fn splice_changes_only_the_value_and_still_loads() {
    for path in loadable_files() {
        let src = read(&path);
        let doc = parse(&src).unwrap();
        let before = our_globals(&src).unwrap();
        let layout = Layout::detect(&src);
        // Replace the first string-keyed field of the first table global, then add a new key.
        let Some(g) = doc
            .globals()
            .iter()
            .find(|g| matches!(g.value.kind, Kind::Table { .. }))
        else {
            continue;
        };
        let global = String::from_utf8(doc.text(g.name).to_vec()).unwrap();
        if doc.global(&global).unwrap().value != g.value {
            continue; // assigned again later; the later value is what Lua keeps
        }
        let replaced = doc.fields(g.value).iter().find_map(|f| match f.key {
            FieldKey::Name(_) | FieldKey::Bracket(_) => doc
                .key_string(f)
                .and_then(|k| String::from_utf8(k.into_owned()).ok())
                .filter(|k| doc.get(g.value, k.as_bytes()) == Some(f))
                .map(|k| (k, f.value.span)),
            FieldKey::Positional => None,
        });
        for (key, span) in replaced
            .into_iter()
            .map(|(k, s)| (k, Some(s)))
            .chain([("svsyncAdded".to_string(), None)])
        {
            let keys = [key.as_str()];
            let out = splice(
                &doc,
                KeyPath {
                    global: &global,
                    keys: &keys,
                },
                &sample_value(),
                layout,
            )
            .unwrap();
            match span {
                Some(span) => {
                    let (start, end) = (span.start as usize, span.end as usize);
                    assert_eq!(&out[..start], &src[..start]);
                    assert_eq!(&out[out.len() - (src.len() - end)..], &src[end..]);
                }
                None => {
                    let prefix = out.iter().zip(&src).take_while(|(a, b)| a == b).count();
                    let suffix = out
                        .iter()
                        .rev()
                        .zip(src.iter().rev())
                        .take_while(|(a, b)| a == b)
                        .count();
                    assert!(
                        prefix + suffix >= src.len(),
                        "{}: bytes changed around the insertion",
                        path.display()
                    );
                }
            }
            let mut expected = before.clone();
            if let Some(LuaValue::Table(t)) = expected.get_mut(global.as_bytes()) {
                t.insert(Key::str(&key), sample_value());
            }
            assert_eq!(
                lua51_globals(&out).unwrap(),
                expected,
                "{} {key}",
                path.display()
            );
            assert_eq!(our_globals(&out).unwrap(), expected);
        }
    }
}

#[test]
fn guildhelper_files_get_a_shared_data_remote_copy() {
    for account in ["ALPHA", "BRAVO", "CHARLIE"] {
        let path = crate::support::testdata().join(format!(
            "WTF/Account/{account}/SavedVariables/GuildHelper.lua"
        ));
        let src = read(&path);
        let doc = parse(&src).unwrap();
        let gh = doc.global("GuildHelper_SavedVariables").unwrap();
        let shared = doc
            .value(doc.get(gh.value, b"sharedData").unwrap().value)
            .unwrap()
            .unwrap();
        let path_ = KeyPath {
            global: "GuildHelper_SavedVariables",
            keys: &["sharedDataRemote"],
        };
        let out = splice(&doc, path_, &shared, Layout::detect(&src)).unwrap();
        let globals = lua51_globals(&out).unwrap();
        let t = globals[&b"GuildHelper_SavedVariables".to_vec()]
            .as_table()
            .unwrap();
        assert_eq!(
            t.get_str("sharedDataRemote"),
            t.get_str("sharedData"),
            "{account}"
        );
        assert_eq!(Layout::detect(&out), Layout::detect(&src));
    }
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Key::str),
        (-5i64..40).prop_map(Key::int),
        any::<i64>().prop_map(|i| Key::Num(Number::new(i as f64))),
        (-1e6f64..1e6).prop_map(|f| Key::Num(Number::new(f))),
        any::<bool>().prop_map(Key::Bool),
    ]
}

fn value() -> impl Strategy<Value = LuaValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(LuaValue::Bool),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| LuaValue::Number(Number::new(f))),
        (-100i64..100).prop_map(|i| LuaValue::Number(Number::new(i as f64))),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(LuaValue::str),
        "[a-z|\\\\\"\n\u{e9}\u{4e2d}0-9 ]{0,20}".prop_map(LuaValue::str),
    ];
    leaf.prop_recursive(5, 64, 10, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..10)
                .prop_map(|v| LuaValue::Table(Table::array(v))),
            prop::collection::vec((key(), inner), 0..10)
                .prop_map(|e| LuaValue::Table(Table::from_entries(e))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_values_round_trip_through_lua51(v in value(), layout in prop::sample::select(layouts().to_vec())) {
        let file = write_file(&[("X", Some(&v))], layout).unwrap();
        let ours = our_globals(&file).unwrap();
        prop_assert_eq!(ours.get(b"X".as_slice()), Some(&v));
        let lua = lua51_globals(&file).unwrap();
        prop_assert_eq!(lua.get(b"X".as_slice()), Some(&v));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
        if let Err(e) = parse(&bytes) {
            prop_assert!(e.offset <= bytes.len());
            let pos = e.position(&bytes);
            prop_assert!(pos.line >= 1 && pos.column >= 1);
        }
    }
}

/// Compares svsync with Lua 5.1 on one input: same verdict, same values.
fn same_verdict_as_lua(src: &[u8]) -> Result<(), TestCaseError> {
    let ours = our_globals(src);
    let lua = lua51_globals(src);
    match (ours, lua) {
        (Ok(o), Ok(l)) => prop_assert_eq!(o, l),
        (Ok(_), Err(l)) => prop_assert!(
            false,
            "svsync accepts what Lua 5.1 refuses ({}): {:?}",
            l,
            String::from_utf8_lossy(src)
        ),
        (Err(o), Ok(_)) => prop_assert!(
            refused_on_purpose(o.code),
            "svsync refuses valid data: {:?} {:?}",
            o,
            String::from_utf8_lossy(src)
        ),
        (Err(_), Err(_)) => {}
    }
    Ok(())
}

const TOKENS: &[&str] = &[
    "X",
    "Y",
    " = ",
    "{",
    "}",
    "[",
    "]",
    "=",
    ",",
    ";",
    "\"a\"",
    "'b\\n'",
    "\"\\65\\0\"",
    "[[x]]",
    "[==[\ny]==]",
    "--c\n",
    "--[[c]]",
    "1",
    "-",
    "0x1F",
    "1e5",
    ".5",
    "true",
    "false",
    "nil",
    "\n",
    " ",
    "\r\n",
    "\\",
    "\"",
    "'",
    "(",
    ")",
    "+",
    "..",
    "inf",
    "local",
    "\"\\300\"",
    "[=",
    "\t",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_agrees_with_lua51(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..40)) {
        let src: String = tokens.concat();
        same_verdict_as_lua(src.as_bytes())?;
    }

    #[test]
    fn statement_soup_agrees_with_lua51(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..30)) {
        let src = format!("X = {{{}", tokens.concat());
        same_verdict_as_lua(src.as_bytes())?;
    }
}

fn small_samples() -> Vec<Vec<u8>> {
    loadable_files()
        .into_iter()
        .map(|p| read(&p))
        .filter(|s| s.len() < 40_000)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_files_never_panic_and_agree_with_lua51(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>(), prop::sample::select(TOKENS)), 1..4),
    ) {
        let samples = small_samples();
        let mut src = which.get(&samples).clone();
        for (at, op, byte, token) in edits {
            if src.is_empty() { break; }
            let i = at.index(src.len());
            match op {
                0 => src[i] = byte,
                1 => { src.remove(i); }
                2 => src.truncate(i),
                _ => { src.splice(i..i, token.bytes()); }
            }
        }
        same_verdict_as_lua(&src)?;
    }
}
