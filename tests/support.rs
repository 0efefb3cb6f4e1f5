//! Helpers shared by the integration tests: test data, and loading files in a real Lua 5.1.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlua::Lua;
use mlua::chunk::ChunkMode;
use svsync::lua::{Key, LuaValue, Number, ParseError, Table, parse};

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Every `.lua` file under `testdata/` that Lua 5.1 loads (everything but `broken/`).
pub fn loadable_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(testdata())
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .filter(|p| !p.components().any(|c| c.as_os_str() == "broken"))
        .collect();
    files.sort();
    assert!(files.len() >= 18, "test data is missing: {files:?}");
    files
}

pub fn broken_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata().join("realworld/broken"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

pub type Globals = BTreeMap<Vec<u8>, LuaValue>;

/// Runs `src` as the standalone `lua5.1 FILE` does: compiled inside one C call (there,
/// `lua_cpcall`; here `loadstring` called from a chunk), which costs one syntax level, so the
/// vendored Lua accepts exactly what `lua5.1 FILE` accepts. Then runs it in `env`.
pub fn lua51_load(lua: &Lua, src: &[u8], env: &mlua::Table) -> Result<(), String> {
    let loader = lua
        .load(
            "local src, env = ...\n\
             local f, err = loadstring(src, '=file')\n\
             if not f then error(err, 0) end\n\
             setfenv(f, env)\n\
             f()",
        )
        .set_mode(ChunkMode::Text)
        .into_function()
        .map_err(|e| e.to_string())?;
    let src = lua.create_string(src).map_err(|e| e.to_string())?;
    loader
        .call::<()>((src, env.clone()))
        .map_err(|e| e.to_string())
}

/// What a real Lua 5.1 holds after running `src` in an empty environment, as the game does.
pub fn lua51_globals(src: &[u8]) -> Result<Globals, String> {
    let lua = Lua::new();
    let env = lua.create_table().map_err(|e| e.to_string())?;
    lua51_load(&lua, src, &env)?;
    let mut out = Globals::new();
    for pair in env.pairs::<mlua::Value, mlua::Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let mlua::Value::String(name) = k else {
            return Err("non-string global".into());
        };
        if let Some(v) = from_mlua(v) {
            out.insert(name.as_bytes().to_vec(), v);
        }
    }
    Ok(out)
}

pub fn from_mlua(v: mlua::Value) -> Option<LuaValue> {
    Some(match v {
        mlua::Value::Nil => return None,
        mlua::Value::Boolean(b) => LuaValue::Bool(b),
        mlua::Value::Integer(i) => LuaValue::Number(Number::new(i as f64)),
        mlua::Value::Number(n) => LuaValue::Number(Number::new(n)),
        mlua::Value::String(s) => LuaValue::str(s.as_bytes()),
        mlua::Value::Table(t) => {
            let mut entries = Vec::new();
            for pair in t.pairs::<mlua::Value, mlua::Value>() {
                let (k, v) = pair.ok()?;
                let key = match k {
                    mlua::Value::Boolean(b) => Key::Bool(b),
                    mlua::Value::Integer(i) => Key::Num(Number::new(i as f64)),
                    mlua::Value::Number(n) => Key::Num(Number::new(n)),
                    mlua::Value::String(s) => Key::str(s.as_bytes()),
                    _ => return None,
                };
                entries.push((key, from_mlua(v)?));
            }
            LuaValue::Table(Table::from_entries(entries))
        }
        _ => return None,
    })
}

/// What svsync reads from `src`: each global's last assignment, nil ones left out.
pub fn our_globals(src: &[u8]) -> Result<Globals, ParseError> {
    let doc = parse(src)?;
    let mut out = Globals::new();
    for g in doc.globals() {
        let name = doc.text(g.name).to_vec();
        match doc.value(g.value).expect("everything is kept") {
            Some(v) => {
                out.insert(name, v);
            }
            None => {
                out.remove(&name);
            }
        }
    }
    Ok(out)
}

/// Globals in order of first appearance, for writing a file back.
pub fn ordered_globals(src: &[u8]) -> Vec<(String, Option<LuaValue>)> {
    let doc = parse(src).unwrap();
    let mut out: Vec<(String, Option<LuaValue>)> = Vec::new();
    for g in doc.globals() {
        let name = String::from_utf8(doc.text(g.name).to_vec()).unwrap();
        let value = doc.value(g.value).unwrap();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => out.push((name, value)),
        }
    }
    out
}

/// Runs `f` on a thread with a large stack (full_moon recurses).
pub fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Errors for files Lua 5.1 loads but svsync refuses on purpose: constructs outside the data
/// subset, and damage that Lua would silently misread.
pub fn refused_on_purpose(code: svsync::lua::ErrorCode) -> bool {
    use svsync::lua::ErrorCode;
    matches!(
        code,
        ErrorCode::NameAsValue
            | ErrorCode::Expression
            | ErrorCode::Statement
            | ErrorCode::TableKey
            | ErrorCode::DamagedNumber
    )
}
