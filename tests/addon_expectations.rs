//! What svsync writes is what the player's addon reads. Every merge result of the fixtures is
//! loaded in Lua 5.1 (as the game loads SavedVariables) and checked with the expectations of the
//! addon's own readers:
//!
//! - current layout (GuildHelper 1.0.23f): every roster record has `data` (the addon indexes
//!   `roster[name].data.faction` at login); posts stay keyed by their id, are envelopes with
//!   `data` (the panes index `article.data.title`) and a string `lastUpdated` (`:sub` on it);
//!   every setup record has `data.guilds`; metadata keys equal the data keys.
//! - older layout: flat roster records, posts as a sequence, `setup.linkedGuildGroups`.
//!
//! Also: merging twice writes nothing the second time, and rounds of merges among three
//! accounts converge on a state these checks accept.

use mlua::Lua;
use svsync::lua::LuaValue;
use svsync::merge::TargetFile;
use svsync::model::Target;
use svsync::model::json::from_json_bytes;
use svsync::peer::source::source_of;

use crate::support::testdata;

/// The addon's expectations, in Lua. `check(t, layout, label)` returns a list of problems.
const CHECKS: &str = r#"
local problems = {}
local function bad(label, what) problems[#problems + 1] = label .. ": " .. what end

local function check_current(t, label)
  for name, r in pairs(t.roster or {}) do
    if type(r) ~= "table" or type(r.data) ~= "table" then
      bad(label, "roster " .. tostring(name) .. " has no data")
    else
      local _ = r.data.faction
    end
  end
  for _, tt in ipairs({"news", "guildInfo", "calendar"}) do
    for k, a in pairs(t[tt] or {}) do
      if type(k) ~= "string" then bad(label, tt .. " is keyed by a " .. type(k)) end
      if type(a) ~= "table" or type(a.data) ~= "table" then
        bad(label, tt .. " " .. tostring(k) .. " is not an envelope")
      else
        local _ = a.data.title
        if a.id ~= k then bad(label, tt .. " " .. tostring(k) .. " has the id " .. tostring(a.id)) end
        if type(a.lastUpdated) ~= "string" then
          bad(label, tt .. " " .. tostring(k) .. " has no string lastUpdated")
        else
          local _ = a.lastUpdated:sub(1, 8)
        end
      end
    end
  end
  for k, s in pairs(t.setup or {}) do
    if type(s) ~= "table" or type(s.data) ~= "table" or type(s.data.guilds) ~= "table" then
      bad(label, "setup " .. tostring(k) .. " has no data.guilds")
    end
  end
  if t.metadata then
    for _, tt in ipairs({"roster", "news", "guildInfo", "calendar"}) do
      local md = t.metadata[tt] or {}
      for k in pairs(t[tt] or {}) do
        if md[k] == nil then bad(label, "metadata." .. tt .. " lacks " .. tostring(k)) end
      end
      for k in pairs(md) do
        if (t[tt] or {})[k] == nil then bad(label, "metadata." .. tt .. " has " .. tostring(k) .. " but " .. tt .. " does not") end
      end
    end
  end
end

local function check_older(t, label)
  for name, r in pairs(t.roster or {}) do
    if type(r) ~= "table" or r.data ~= nil then bad(label, "roster " .. tostring(name) .. " is not flat") end
  end
  for _, tt in ipairs({"news", "guildInfo", "calendar"}) do
    local n = 0
    for k, a in pairs(t[tt] or {}) do
      n = n + 1
      if type(a) ~= "table" or a.data ~= nil then bad(label, tt .. " has a non-flat post") end
    end
    if n ~= #(t[tt] or {}) then bad(label, tt .. " is not a sequence") end
  end
  for k, s in pairs(t.setup or {}) do
    if k ~= "linkedGuildGroups" then bad(label, "setup has the key " .. tostring(k)) end
  end
end

function check(t, layout, label)
  problems = {}
  if type(t) == "table" then
    if layout == "current" then check_current(t, label) else check_older(t, label) end
  end
  return problems
end
"#;

struct Account {
    name: &'static str,
    bytes: Vec<u8>,
    /// The layout of its own data (what its addon reads).
    current: bool,
}

fn fixture(name: &'static str, current: bool) -> Account {
    let path = match name {
        "AWKWARD" => testdata().join("fixtures/AWKWARD/SavedVariables/GuildHelper.lua"),
        _ => testdata().join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua")),
    };
    Account {
        name,
        bytes: std::fs::read(path).unwrap(),
        current,
    }
}

fn fixtures() -> Vec<Account> {
    vec![
        fixture("ALPHA", true),
        fixture("BRAVO", false),
        fixture("CHARLIE", false),
        fixture("AWKWARD", true),
    ]
}

/// What the receiver writes after a sync of `from` into `to` (through the merge the receiver
/// runs); `None`: nothing to write.
fn merge(from: &Account, to: &[u8], target: Target) -> Option<Vec<u8>> {
    let source = source_of(
        std::path::Path::new(from.name),
        from.bytes.clone(),
        from.name,
    )
    .unwrap();
    let mut file = TargetFile::open(to.to_vec(), target).unwrap();
    for p in &source.payloads {
        let Ok(LuaValue::Table(t)) =
            from_json_bytes(&p.packed.to_vec().expect("a payload unpacks"))
        else {
            panic!("{}: payload of {} does not decode", from.name, p.table);
        };
        file.merge(p.table, t);
    }
    file.finish(source.metadata).unwrap().merged
}

/// Loads a file in Lua 5.1 and runs the addon's expectations on `sharedData` and on the target.
fn addon_problems(bytes: &[u8], current: bool, target: Target, label: &str) -> Vec<String> {
    let lua = Lua::new();
    lua.load(CHECKS).exec().unwrap();
    let env = lua.create_table().unwrap();
    lua.load(bytes)
        .set_name("=GuildHelper.lua")
        .set_environment(env.clone())
        .exec()
        .unwrap_or_else(|e| panic!("{label}: Lua 5.1 cannot load the result: {e}"));
    let root: mlua::Table = env.get("GuildHelper_SavedVariables").unwrap();
    let check: mlua::Function = lua.globals().get("check").unwrap();
    let layout = if current { "current" } else { "older" };
    let mut out = Vec::new();
    for name in ["sharedData", target.key()] {
        let t: mlua::Value = root.get(name).unwrap();
        let problems: Vec<String> = check.call((t, layout, format!("{label} {name}"))).unwrap();
        out.extend(problems);
    }
    out
}

#[test]
fn every_pair_and_target_loads_and_passes_the_addons_expectations() {
    let accounts = fixtures();
    let mut checked = 0;
    for from in &accounts {
        for to in &accounts {
            if from.name == to.name {
                continue;
            }
            for target in [Target::SharedDataRemote, Target::SharedData] {
                let label = format!("{} -> {} ({target})", from.name, to.name);
                let once = merge(from, &to.bytes, target).unwrap_or_else(|| to.bytes.clone());
                let problems = addon_problems(&once, to.current, target, &label);
                assert!(problems.is_empty(), "{problems:#?}");
                // The same merge again writes nothing.
                assert_eq!(
                    merge(from, &once, target),
                    None,
                    "{label}: second merge wrote"
                );
                // The awkward values survived: big integers, exponents, bytes, `$`/`#` keys.
                if from.name == "AWKWARD" {
                    let text = &once[..];
                    for needle in [
                        &b"9007199254740993"[..],
                        b"-7.068294470756856e-05",
                        b"6.3375e+02",
                        b"1e400",
                        b"0.1000000014901161",
                        // Roster data fields take `pt_` in the older layout.
                        if to.current {
                            b"[\"$price\"]"
                        } else {
                            b"[\"pt_$price\"]"
                        },
                        if to.current {
                            b"[\"#tag\"]"
                        } else {
                            b"[\"pt_#tag\"]"
                        },
                        b"\xc8\xc9\xff and \\\"quotes\\\" \\\\ backslash",
                        "\u{e9}t\u{e9}".as_bytes(),
                    ] {
                        let latin1 = needle == "\u{e9}t\u{e9}".as_bytes();
                        let found = if latin1 {
                            text.windows(3).any(|w| w == b"\xe9t\xe9")
                        } else {
                            text.windows(needle.len()).any(|w| w == needle)
                        };
                        assert!(found, "{label}: {} lost", String::from_utf8_lossy(needle));
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
}

/// A current-layout receiver never gets a record of the older layout, in either target.
#[test]
fn a_current_layout_receiver_never_gets_an_older_record() {
    let accounts = fixtures();
    for to in accounts.iter().filter(|a| a.current) {
        for from in accounts.iter().filter(|a| !a.current) {
            for target in [Target::SharedDataRemote, Target::SharedData] {
                let once = merge(from, &to.bytes, target).unwrap();
                let label = format!("{} -> {} ({target})", from.name, to.name);
                assert!(addon_problems(&once, true, target, &label).is_empty());
            }
        }
    }
}

/// Rounds of merges among three accounts (every ordered pair, again and again) come to rest,
/// and where they rest the addon reads everything.
#[test]
fn rounds_among_three_accounts_converge_on_a_readable_state() {
    for target in [Target::SharedDataRemote, Target::SharedData] {
        let mut accounts = vec![
            fixture("ALPHA", true),
            fixture("BRAVO", false),
            fixture("AWKWARD", true),
        ];
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds <= 6, "{target}: no rest after 5 rounds");
            let mut wrote = false;
            for i in 0..accounts.len() {
                for j in 0..accounts.len() {
                    if i == j {
                        continue;
                    }
                    if let Some(out) = merge(&accounts[i], &accounts[j].bytes, target) {
                        accounts[j].bytes = out;
                        wrote = true;
                    }
                }
            }
            if !wrote {
                break;
            }
        }
        for a in &accounts {
            let label = format!("{} after {rounds} rounds ({target})", a.name);
            let problems = addon_problems(&a.bytes, a.current, target, &label);
            assert!(problems.is_empty(), "{problems:#?}");
        }
        if target == Target::SharedData {
            // Everyone holds everyone's roster.
            for a in &accounts {
                let text = String::from_utf8_lossy(&a.bytes);
                for toon in [
                    "Fatherrahl-Velen",
                    "Oldmain-Eonar",
                    "kk\u{f6}nen-Argent Dawn",
                ] {
                    assert!(text.contains(toon), "{}: {toon}", a.name);
                }
            }
        }
    }
}
