//! Every item of the grammar, valid and invalid, against Lua 5.1; and random files written with
//! every syntax variant the grammar allows.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use svsync::lua::{ErrorCode, Key, LuaValue, Number, Table, parse};

use crate::support::{Globals, lua51_globals, our_globals, refused_on_purpose};

/// Valid inputs: svsync reads exactly what Lua 5.1 loads.
const VALID: &[&str] = &[
    "",
    "-- only a comment",
    "\n--[[ block ]]\n--[==[ level ]]=] still ]==]",
    "X = nil",
    "X = true Y = false",
    "X = 1; Y = 2;",
    "X = \"a\\\"b\" Y = 'a\\'b' Z = \"it's\" W = 'say \"hi\"'",
    "X = \"\\a\\b\\f\\n\\r\\t\\v\\\\\\\"\\'\"",
    "X = \"\\0\\1\\12\\123\\255\\0651\"",
    "X = \"line\\\nnext\" Y = \"crlf\\\r\nnext\"",
    "X = \"unknown \\q \\z \\x escapes keep the letter\"",
    "X = [[long]] Y = [[\nskip first newline]] Z = [==[with ]] inside]==]",
    "X = [[\r\nCRLF first]] Y = [[a\r\nb\rc]]",
    "X = [=[ [[ ]=] Y = [[ [=[ ]]",
    "X = 12 Y = 1.5 Z = .5 W = 5. V = 1e5 U = 1E-5 T = 2.288818359375e-05",
    "X = 0x1F Y = 0XfF Z = 007 W = 1e+20",
    "X = -5 Y = - 5 Z = - --[[c]] 5 W = -0 V = -0x10 U = -.5",
    "X = 1e999",
    "X = {}",
    "X = {\n}",
    "X = {1, 2, 3}",
    "X = {1; 2; 3;}",
    "X = {a = 1, b = 2,}",
    "X = {[\"a\"] = 1, ['b'] = 2, [ [[c]] ] = 3}",
    "X = {[1] = 'a', [2] = 'b', [4] = 'd'}",
    "X = {[-12345] = 1, [4292059298] = 2, [1.5] = 3, [true] = 4, [false] = 5}",
    "X = {'a', nil, 'c', -- [3]\n}",
    "X = {[1] = 'x', 'y'}",
    "X = {'y', [1] = 'x'}",
    "X = {a = 1, a = 2}",
    "X = {a = {b = {c = {}}}}",
    "X = {\t\"tab\", -- [1]\n\t[\"k\"] = {\n\t},\n}",
    "X = 1\nX = 2",
    "X = {EnumerateIndexedEntries = nil --[[ skipped inline function ]], headIndex = 0}",
    "_detalhes_database = {}",
    "X = 1\rY = 2\r",
    "X = \"\u{e9}\u{4e2d}\u{6587}\"",
    "X = \"\\232\\135\" Y = \"\\\\232\\\\135\"",
    "X = {--[[a]]1--[[b]],--[[c]]2--[[d]]}",
];

/// Invalid inputs, with the reason svsync gives.
const INVALID: &[(&str, ErrorCode)] = &[
    ("X = inf", ErrorCode::NameAsValue),
    ("X = -inf", ErrorCode::NameAsValue),
    ("X = nan", ErrorCode::NameAsValue),
    ("X = -nan(ind)", ErrorCode::NameAsValue),
    ("X = {a = -nan(ind)}", ErrorCode::NameAsValue),
    ("X = math.huge", ErrorCode::NameAsValue),
    ("X = y", ErrorCode::NameAsValue),
    ("X = f()", ErrorCode::NameAsValue),
    ("X = {f 'x'}", ErrorCode::NameAsValue),
    ("X = 1 + 2", ErrorCode::Expression),
    ("X = {1 .. 2}", ErrorCode::Expression),
    ("X = {[2%9] = 1}", ErrorCode::Expression),
    ("X = {[\"a\" .. \"b\"] = 1}", ErrorCode::Expression),
    ("X = (1)", ErrorCode::Expression),
    ("X = not nil", ErrorCode::Expression),
    ("X = - '5'", ErrorCode::Expression),
    ("X = - -5", ErrorCode::Expression),
    ("X = function() end", ErrorCode::Expression),
    ("local X = 1", ErrorCode::Statement),
    ("X, Y = 1, 2", ErrorCode::Statement),
    ("X.y = 1", ErrorCode::Statement),
    ("return", ErrorCode::Statement),
    ("print('x')", ErrorCode::Expression),
    ("X = {[{}] = 1}", ErrorCode::TableKey),
    ("X = {[nil] = 1}", ErrorCode::NilKey),
    ("X = {", ErrorCode::Truncated),
    ("X = {a = {1, 2", ErrorCode::Truncated),
    ("X = {a = ", ErrorCode::Truncated),
    ("X = {[1]", ErrorCode::Truncated),
    ("X =", ErrorCode::Truncated),
    ("X", ErrorCode::Truncated),
    ("X = \"abc", ErrorCode::UnfinishedString),
    ("X = 'abc\n'", ErrorCode::RawLineBreakInString),
    ("X = \"a\rb\"", ErrorCode::RawLineBreakInString),
    ("X = \"\\300\"", ErrorCode::EscapeTooLarge),
    ("X = [=[ abc ]]", ErrorCode::UnfinishedLongBracket),
    ("X = [[ a [[ b ]]", ErrorCode::NestedLongBracket),
    ("X = [= x", ErrorCode::InvalidLongDelimiter),
    ("X = 1 --[[ never closed", ErrorCode::UnfinishedLongBracket),
    ("X = 1e", ErrorCode::MalformedNumber),
    ("X = 0x", ErrorCode::MalformedNumber),
    ("X = 1.2.3", ErrorCode::MalformedNumber),
    ("X = 12abc", ErrorCode::MalformedNumber),
    ("X = {a = 1 b = 2}", ErrorCode::Unexpected),
    ("X = {,}", ErrorCode::Unexpected),
    ("X = {1,,2}", ErrorCode::Unexpected),
    ("X = }", ErrorCode::Unexpected),
    ("X = {end = 1}", ErrorCode::Unexpected),
    ("X = 1;;", ErrorCode::Unexpected),
    ("\u{feff}X = 1", ErrorCode::Unexpected),
    ("X = @", ErrorCode::Unexpected),
    ("X = {}, \"a\"", ErrorCode::Statement),
    ("X = 1, 2", ErrorCode::Statement),
    ("X = {7\u{0}213}", ErrorCode::DamagedNumber),
    ("X = 1\u{0} Y = 2", ErrorCode::DamagedNumber),
    ("X = 1e\u{0}", ErrorCode::DamagedNumber),
];

#[test]
fn valid_grammar_items_read_as_lua51_loads_them() {
    for src in VALID {
        let lua = lua51_globals(src.as_bytes())
            .unwrap_or_else(|e| panic!("{src:?}: Lua 5.1 refuses: {e}"));
        let ours = our_globals(src.as_bytes()).unwrap_or_else(|e| panic!("{src:?}: {e:?}"));
        assert_eq!(ours, lua, "{src:?}");
    }
}

#[test]
fn invalid_grammar_items_are_refused_with_the_right_reason() {
    for (src, code) in INVALID {
        let err = parse(src.as_bytes()).expect_err(src);
        assert_eq!(err.code, *code, "{src:?}: {}", err.message);
        let pos = err.position(src.as_bytes());
        assert!(pos.line >= 1 && pos.column >= 1);
        // Lua 5.1 refuses these too, except what it runs but a data file must not contain.
        if !refused_on_purpose(*code) {
            assert!(
                lua51_globals(src.as_bytes()).is_err(),
                "Lua 5.1 loads {src:?}"
            );
        }
    }
}

#[test]
fn error_messages_speak_to_players() {
    let msg = |src: &str| parse(src.as_bytes()).unwrap_err().message;
    assert!(msg("X = inf").contains("load it as nil and the value would be lost"));
    assert!(msg("X = -nan(ind)").contains("fail to load this whole file"));
    assert!(msg("X = {a = 1").contains("`X` (opened at line 1)"));
    assert!(msg("X = {a = 1").contains("crashes while saving"));
    assert!(msg("\u{feff}X = 1").contains("byte order mark"));
    let err = parse(b"\r\nX = {\r\n\t[\"a\"] = \"x\ry\",\r\n}").unwrap_err();
    assert_eq!(
        err.position(b"\r\nX = {\r\n\t[\"a\"] = \"x\ry\",\r\n}")
            .line,
        3
    );
}

/// Renders a value with randomly chosen syntax for every token.
struct Render<'r> {
    choices: &'r [u8],
    at: usize,
    out: Vec<u8>,
}

impl Render<'_> {
    fn pick(&mut self, n: u8) -> u8 {
        let c = self
            .choices
            .get(self.at % self.choices.len().max(1))
            .copied()
            .unwrap_or(0);
        self.at += 1;
        c % n
    }

    fn trivia(&mut self) {
        match self.pick(12) {
            0 => self.out.extend_from_slice(b"\n"),
            1 => self.out.extend_from_slice(b"\r\n"),
            2 => self.out.extend_from_slice(b"\t"),
            3 => self.out.extend_from_slice(b" -- note\n"),
            4 => self.out.extend_from_slice(b"--[[ c ]]"),
            5 => self.out.extend_from_slice(b"--[==[ ]] ]==]"),
            6 => self.out.extend_from_slice(b"\r"),
            _ => self.out.push(b' '),
        }
    }

    fn string(&mut self, s: &[u8]) {
        let safe_long = !s.contains(&b'\r')
            && !s.contains(&b']')
            && s.first() != Some(&b'\n')
            && !s.windows(2).any(|w| w == b"[[");
        match self.pick(4) {
            0 if safe_long => {
                self.out.extend_from_slice(b"[==[");
                if self.pick(2) == 0 {
                    self.out.push(b'\n');
                }
                self.out.extend_from_slice(s);
                self.out.extend_from_slice(b"]==]");
            }
            1 => {
                self.out.push(b'\'');
                for &b in s {
                    match b {
                        b'\'' | b'\\' => self.out.extend_from_slice(&[b'\\', b]),
                        b'\n' => self.out.extend_from_slice(b"\\\n"),
                        b'\r' => self.out.extend_from_slice(b"\\r"),
                        0..=31 | 127 => self.out.extend_from_slice(format!("\\{b:03}").as_bytes()),
                        _ => self.out.push(b),
                    }
                }
                self.out.push(b'\'');
            }
            _ => svsync::lua::write_quoted(&mut self.out, s),
        }
    }

    fn number(&mut self, n: f64) {
        if n.fract() == 0.0 && (0.0..1e15).contains(&n) && self.pick(3) == 0 {
            self.out
                .extend_from_slice(format!("0x{:X}", n as u64).as_bytes());
            return;
        }
        if n < 0.0 {
            self.out.push(b'-');
            if self.pick(3) == 0 {
                // A space first: `-` right before `--` would make `---`, a comment.
                self.out.push(b' ');
                self.trivia();
            }
        }
        let text = svsync::lua::format_number(n.abs()).unwrap();
        self.out.extend_from_slice(text.as_bytes());
    }

    fn key(&mut self, k: &Key) {
        match k {
            Key::Str(s) if is_name(s) && self.pick(2) == 0 => self.out.extend_from_slice(s),
            Key::Str(s) => {
                self.out.push(b'[');
                self.trivia();
                self.string(s);
                self.out.push(b']');
            }
            Key::Num(n) => {
                self.out.push(b'[');
                self.number(n.value());
                self.out.push(b']');
            }
            Key::Bool(b) => self
                .out
                .extend_from_slice(if *b { b"[true]" } else { b"[false]" }),
        }
        self.trivia();
        self.out.push(b'=');
        self.trivia();
    }

    fn value(&mut self, v: &LuaValue) {
        match v {
            LuaValue::Bool(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            LuaValue::Number(n) => self.number(n.value()),
            LuaValue::Str(s) => self.string(s),
            LuaValue::Table(t) => {
                self.out.push(b'{');
                let n = t.sequence_len();
                let positional = self.pick(3) != 0;
                for (i, (k, item)) in t.iter().enumerate() {
                    self.trivia();
                    if !(positional && k.as_index().is_some_and(|i| i <= n) && is_in_order(t, i)) {
                        self.key(k);
                    }
                    self.value(item);
                    self.trivia();
                    if i + 1 < t.len() || self.pick(2) == 0 {
                        let sep = if self.pick(3) == 0 { b';' } else { b',' };
                        self.out.push(sep);
                    }
                }
                self.trivia();
                self.out.push(b'}');
            }
        }
    }
}

/// Whether entry `i` of `t` is array item `i + 1` and all before it are items too, so it can be
/// written without a key.
fn is_in_order(t: &Table, i: usize) -> bool {
    t.entries()[..=i]
        .iter()
        .enumerate()
        .all(|(j, (k, _))| k.as_index() == Some(j + 1))
}

fn is_name(s: &[u8]) -> bool {
    const RESERVED: &[&[u8]] = &[
        b"and",
        b"break",
        b"do",
        b"else",
        b"elseif",
        b"end",
        b"false",
        b"for",
        b"function",
        b"if",
        b"in",
        b"local",
        b"nil",
        b"not",
        b"or",
        b"repeat",
        b"return",
        b"then",
        b"true",
        b"until",
        b"while",
    ];
    !s.is_empty()
        && (s[0].is_ascii_alphabetic() || s[0] == b'_')
        && s.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && !RESERVED.contains(&s)
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,6}".prop_map(Key::str),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Key::str),
        (1i64..6).prop_map(Key::int),
        (-1e4f64..1e4).prop_map(|f| Key::Num(Number::new(f))),
        any::<bool>().prop_map(Key::Bool),
    ]
}

fn value() -> impl Strategy<Value = LuaValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(LuaValue::Bool),
        (-1e6f64..1e6).prop_map(|f| LuaValue::Number(Number::new(f))),
        (-50i64..5000).prop_map(|i| LuaValue::Number(Number::new(i as f64))),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(LuaValue::str),
        "[a-z \n\\\\'\"\\]\\[]{0,12}".prop_map(LuaValue::str),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8)
                .prop_map(|v| LuaValue::Table(Table::array(v))),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|e| LuaValue::Table(Table::from_entries(e))),
        ]
    })
}

/// A runner of `cases` random cases that keeps no regression file.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn render(v: &LuaValue, choices: &[u8]) -> Vec<u8> {
    let mut r = Render {
        choices,
        at: 0,
        out: Vec::new(),
    };
    r.trivia();
    r.out.extend_from_slice(b"X");
    r.trivia();
    r.out.push(b'=');
    r.trivia();
    r.value(v);
    r.trivia();
    r.out
}

#[test]
fn random_syntax_reads_as_lua51_loads_it() {
    let mut runner = runner(600);
    let strategy = (value(), prop::collection::vec(any::<u8>(), 1..64));
    runner
        .run(&strategy, |(v, choices)| {
            let src = render(&v, &choices);
            let expected: Globals = [(b"X".to_vec(), v.clone())].into_iter().collect();
            let ours = our_globals(&src).map_err(|e| {
                TestCaseError::fail(format!("{e:?} in {:?}", String::from_utf8_lossy(&src)))
            })?;
            prop_assert_eq!(&ours, &expected);
            prop_assert_eq!(lua51_globals(&src).unwrap(), expected);
            Ok(())
        })
        .unwrap();
}

#[test]
fn corrupted_random_syntax_gets_lua51_verdict() {
    let mut runner = runner(1500);
    let strategy = (
        value(),
        prop::collection::vec(any::<u8>(), 1..64),
        any::<prop::sample::Index>(),
        0u8..5,
    );
    let accepted = std::cell::Cell::new(0usize);
    let refused = std::cell::Cell::new(0usize);
    runner
        .run(&strategy, |(v, choices, at, op)| {
            let mut src = render(&v, &choices);
            let i = at.index(src.len());
            match op {
                0 => src.truncate(i),
                1 => {
                    src.remove(i);
                }
                2 => src.insert(i, b'"'),
                3 => src.insert(i, b'{'),
                _ => src.insert(i, b'\r'),
            }
            let ours = our_globals(&src);
            let lua = lua51_globals(&src);
            match (&ours, &lua) {
                (Ok(o), Ok(l)) => prop_assert_eq!(o, l),
                (Err(_), Err(_)) => {}
                (Err(e), Ok(_)) if refused_on_purpose(e.code) => {}
                _ => prop_assert!(
                    false,
                    "svsync {:?}, Lua 5.1 {:?} for {:?}",
                    ours.as_ref().err(),
                    lua.as_ref().err(),
                    String::from_utf8_lossy(&src)
                ),
            }
            let cell = if ours.is_ok() { &accepted } else { &refused };
            cell.set(cell.get() + 1);
            Ok(())
        })
        .unwrap();
    assert!(
        accepted.get() > 150 && refused.get() > 150,
        "accepted {}, refused {}",
        accepted.get(),
        refused.get()
    );
}

/// A file read in blocks of any size parses as the whole file does: the same statements and
/// values when it is valid, and a hand-over to the whole-file parse when it is not.
#[test]
fn blocks_of_any_size_parse_as_the_whole_file() {
    use svsync::lua::{BlocksError, ParseOptions, parse_blocks};
    let mut runner = runner(800);
    let strategy = (
        value(),
        prop::collection::vec(any::<u8>(), 1..64),
        any::<prop::sample::Index>(),
        0u8..6,
        1usize..40,
    );
    runner
        .run(&strategy, |(v, choices, at, op, block)| {
            let mut src = render(&v, &choices);
            let i = at.index(src.len());
            match op {
                0 => src.truncate(i),
                1 => src.insert(i, b'"'),
                2 => src.insert(i, b'\r'),
                _ => {}
            }
            let options = ParseOptions::default();
            let whole = svsync::lua::parse_with(&src, &options);
            let blocks = parse_blocks(&src[..], src.len(), &options, block);
            match (whole, blocks) {
                (Ok(whole), Ok(parse)) => {
                    prop_assert_eq!(parse.len, src.len());
                    let (doc, _) = parse.into_document(&src);
                    prop_assert_eq!(doc.globals(), whole.globals());
                    for (a, b) in doc.globals().iter().zip(whole.globals()) {
                        prop_assert_eq!(doc.value(a.value).ok(), whole.value(b.value).ok());
                    }
                }
                (Err(_), Err(BlocksError::NeedsWholeFile)) => {}
                (whole, blocks) => prop_assert!(
                    false,
                    "whole {:?}, blocks of {} {:?} for {:?}",
                    whole.err(),
                    block,
                    blocks.err(),
                    String::from_utf8_lossy(&src)
                ),
            }
            Ok(())
        })
        .unwrap();
}

/// The payload encoding, written and read without a JSON tree, loses nothing and is plain
/// compact JSON: serde_json reads it and writes it back byte for byte.
#[test]
fn random_values_cross_the_json_payload_unchanged() {
    use svsync::model::json::{from_json_bytes, to_json_bytes};
    let mut runner = runner(600);
    runner
        .run(&value(), |v| {
            let bytes = to_json_bytes(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes)))
            })?;
            prop_assert_eq!(serde_json::to_vec(&json).unwrap(), bytes.clone());
            let back = from_json_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, v);
            Ok(())
        })
        .unwrap();
}

/// `Document::matches` agrees with building the value and comparing, on every syntax variant
/// (repeated keys, nils and array batches included).
#[test]
fn matching_a_node_agrees_with_building_its_value() {
    let mut runner = runner(600);
    let strategy = (value(), value(), prop::collection::vec(any::<u8>(), 1..64));
    runner
        .run(&strategy, |(v, other, choices)| {
            let mut src = render(&v, &choices);
            // A repeated key and a nil, as files written by hand may have.
            if let LuaValue::Table(_) = v
                && choices[0] % 3 == 0
                && src.ends_with(b"}")
            {
                src.pop();
                src.extend_from_slice(b";zz=1,zz=nil}");
            }
            let doc = parse(&src).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let node = doc.global("X").unwrap().value;
            let built = doc.value(node).unwrap();
            prop_assert_eq!(doc.matches(node, &v), built.as_ref() == Some(&v));
            prop_assert_eq!(doc.matches(node, &other), built.as_ref() == Some(&other));
            // One leaf changed, deep inside.
            let changed = mutate(&v, &choices);
            prop_assert_eq!(
                doc.matches(node, &changed),
                built.as_ref() == Some(&changed)
            );
            Ok(())
        })
        .unwrap();
}

/// `v` with one leaf changed, on a path chosen by `choices`.
fn mutate(v: &LuaValue, choices: &[u8]) -> LuaValue {
    let pick = choices.first().copied().unwrap_or(0) as usize;
    match v {
        LuaValue::Bool(b) => LuaValue::Bool(!b),
        LuaValue::Number(n) => LuaValue::Number(Number::new(n.value() + 1.0)),
        LuaValue::Str(s) => {
            let mut s = s.to_vec();
            s.push(b'x');
            LuaValue::str(s)
        }
        LuaValue::Table(t) if t.is_empty() => LuaValue::Table(Table::from_entries([(
            Key::str("new"),
            LuaValue::Bool(true),
        )])),
        LuaValue::Table(t) => {
            let at = pick % t.len();
            let entries = t
                .entries()
                .iter()
                .enumerate()
                .map(|(i, (k, x))| {
                    let x = if i == at {
                        mutate(x, &choices[1.min(choices.len())..])
                    } else {
                        x.clone()
                    };
                    (k.clone(), x)
                })
                .collect::<Vec<_>>();
            LuaValue::Table(Table::from_entries(entries))
        }
    }
}

/// A payload encoded straight from the syntax tree is the payload of the value Lua builds,
/// byte for byte, on every syntax variant (repeated keys, nils and array batches included).
#[test]
fn payloads_from_the_tree_equal_payloads_from_values() {
    use svsync::model::json::{node_to_json_bytes, to_json_bytes};
    let mut runner = runner(600);
    let strategy = (value(), prop::collection::vec(any::<u8>(), 1..64));
    runner
        .run(&strategy, |(v, choices)| {
            if !matches!(v, LuaValue::Table(_)) {
                return Ok(());
            }
            let mut src = render(&v, &choices);
            if choices[0] % 3 == 0 && src.ends_with(b"}") {
                src.pop();
                src.extend_from_slice(b";zz=1,zz=nil,[1]=true}");
            }
            let doc = parse(&src).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let node = doc.global("X").unwrap().value;
            let value = doc.value(node).unwrap().unwrap();
            prop_assert_eq!(
                node_to_json_bytes(&doc, node).ok(),
                to_json_bytes(&value).ok(),
                "{}",
                String::from_utf8_lossy(&src)
            );
            Ok(())
        })
        .unwrap();
}
