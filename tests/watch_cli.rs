//! `svsync watch` with real file events in temp folders: a set of accounts kept in step
//! whenever the game saves one. Waits are generous and bounded; no assertion is about time.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use svsync::lua::{Key, KeyPath, Layout, LuaValue, Table, parse, splice};

use crate::support::testdata;

const PATIENCE: Duration = Duration::from_secs(60);

/// A WoW folder: ALPHA, BRAVO and CHARLIE in `_retail_`, DELTA (a copy of CHARLIE) in
/// `_classic_`.
pub struct Wow {
    pub dir: tempfile::TempDir,
}

impl Wow {
    pub fn new() -> Wow {
        let dir = tempfile::tempdir().unwrap();
        let w = Wow { dir };
        for (name, from) in [
            ("ALPHA", "ALPHA"),
            ("BRAVO", "BRAVO"),
            ("CHARLIE", "CHARLIE"),
        ] {
            w.put("_retail_", name, &original(from));
        }
        w.put("_classic_", "DELTA", &original("CHARLIE"));
        w
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("World of Warcraft")
    }

    pub fn put(&self, flavor: &str, name: &str, bytes: &[u8]) {
        let f = self.file_in(flavor, name);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, bytes).unwrap();
    }

    pub fn file_in(&self, flavor: &str, name: &str) -> PathBuf {
        self.root()
            .join(flavor)
            .join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua"))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        if name == "DELTA" {
            self.file_in("_classic_", name)
        } else {
            self.file_in("_retail_", name)
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.file(name)).unwrap()
    }

    pub fn has(&self, name: &str, needle: &str) -> bool {
        String::from_utf8_lossy(&self.read(name)).contains(needle)
    }

    /// Saves a file the way the game does: write a temporary file, then rename it over.
    pub fn game_save(&self, name: &str, content: &[u8]) {
        let f = self.file(name);
        let tmp = f.with_extension("lua.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &f).unwrap();
    }

    /// The game saves `name` with a new toon in its own roster (in its own layout).
    pub fn save_with_toon(&self, name: &str, toon: &str) {
        let now = self.read(name);
        self.game_save(name, &with_toon(&now, toon));
    }

    pub fn backups(&self, name: &str) -> usize {
        svsync::fsio::write::backups(&self.file(name)).len()
    }

    pub fn svsync(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("svsync").unwrap();
        c.env("SVSYNC_STATE_DIR", self.state());
        c
    }
}

pub fn original(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua")))
        .unwrap()
}

/// `src` with a new roster record for `toon` in `sharedData`, in the layout the file's own
/// roster records have.
pub fn with_toon(src: &[u8], toon: &str) -> Vec<u8> {
    let doc = parse(src).unwrap();
    let root = doc.global("GuildHelper_SavedVariables").unwrap().value;
    let shared = doc.get(root, b"sharedData").unwrap().value;
    let roster = doc.get(shared, b"roster").unwrap().value;
    let envelope = doc
        .fields(roster)
        .iter()
        .any(|f| doc.get(f.value, b"data").is_some());
    let s = |v: &str| LuaValue::str(v);
    let record = if envelope {
        Table::from_entries([
            (Key::str("id"), s(toon)),
            (Key::str("tableType"), s("roster")),
            (Key::str("guildName"), s("No Rest For The Wicked-Eonar")),
            (Key::str("lastUpdated"), s("20261201120000")),
            (Key::str("deleted"), LuaValue::Bool(false)),
            (
                Key::str("data"),
                LuaValue::Table(Table::from_entries([
                    (Key::str("name"), s(toon)),
                    (Key::str("rank"), s("Member")),
                ])),
            ),
        ])
    } else {
        Table::from_entries([
            (Key::str("pt_name"), s(toon)),
            (Key::str("pt_rank"), s("Member")),
            (Key::str("pt_guildName"), s("No Rest For The Wicked-Eonar")),
            (Key::str("lastUpdated"), s("20261201120000")),
            (Key::str("deleted"), LuaValue::Bool(false)),
        ])
    };
    splice(
        &doc,
        KeyPath {
            global: "GuildHelper_SavedVariables",
            keys: &["sharedData", "roster", toon],
        },
        &LuaValue::Table(record),
        Layout::detect(src),
    )
    .unwrap()
}

pub struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    pub fn start(wow: &Wow, args: &[&str]) -> Watch {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("svsync"))
            .env("SVSYNC_STATE_DIR", wow.state())
            .arg("watch")
            .args(args)
            .args(["--debounce-ms", "300"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Watch { child, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) {
        let start = Instant::now();
        loop {
            if pred(&self.lines()) {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "waited for {what}; output:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_until(&self, what: &str, pred: impl Fn() -> bool) {
        self.wait_for(what, |_| pred());
    }

    /// Waits for the next "all N accounts in step" line after `after` lines.
    pub fn wait_in_step(&self, after: usize) {
        self.wait_for("the accounts to be in step", |l| {
            l[after.min(l.len())..]
                .iter()
                .any(|x| x.contains("accounts in step"))
        });
    }

    #[cfg(unix)]
    pub fn signal(mut self, sig: i32) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "watch did not stop on a signal");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "watch did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

fn all_retail(wow: &Wow) -> Vec<String> {
    vec![
        "--all".into(),
        "--wtf".into(),
        wow.root().display().to_string(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_save_on_each_of_three_accounts_reaches_the_other_two_and_another_flavor_is_left_alone() {
    let wow = Wow::new();
    let delta = wow.read("DELTA");
    let a = all_retail(&wow);
    let w = Watch::start(&wow, &args(&a));
    w.wait_in_step(0);
    for (i, name) in ["ALPHA", "BRAVO", "CHARLIE"].into_iter().enumerate() {
        let toon = format!("Saved{i}-Test");
        wow.save_with_toon(name, &toon);
        for other in ["ALPHA", "BRAVO", "CHARLIE"] {
            if other != name {
                w.wait_until(&format!("{toon} to reach {other}"), || {
                    wow.has(other, &format!("[\"{toon}\"]"))
                });
            }
        }
    }
    w.wait_in_step(0);
    // DELTA is `_classic_`: alone in its flavor, never written.
    assert_eq!(wow.read("DELTA"), delta);
    assert_eq!(wow.backups("DELTA"), 0);
}

/// The game overwrites a merge at logout (it writes what it held in memory): svsync merges
/// again right after that save, toward the account that just saved.
#[test]
fn a_logout_that_overwrites_a_merge_is_merged_again() {
    let wow = Wow::new();
    let wtf = wow.root().join("_retail_/WTF");
    let w = Watch::start(&wow, &["ALPHA", "BRAVO", "--wtf", wtf.to_str().unwrap()]);
    w.wait_in_step(0);
    assert!(wow.has("BRAVO", "202501051930127731"));
    // BRAVO logs out: the game writes BRAVO as it was before the merge.
    let n = w.lines().len();
    wow.game_save("BRAVO", &original("BRAVO"));
    w.wait_until("ALPHA's news to be back in BRAVO", || {
        wow.has("BRAVO", "202501051930127731")
    });
    w.wait_in_step(n);
    // The same after a plain revert of ALPHA's own file.
    let n = w.lines().len();
    wow.game_save("ALPHA", &original("ALPHA"));
    w.wait_until("BRAVO's news to be back in ALPHA", || {
        wow.has("ALPHA", "202411301924102656")
    });
    w.wait_in_step(n);
}

#[test]
fn a_save_is_merged_once_and_nothing_ping_pongs_over_a_quiet_period() {
    let wow = Wow::new();
    let a = all_retail(&wow);
    let w = Watch::start(&wow, &args(&a));
    w.wait_in_step(0);
    let before: Vec<usize> = ["ALPHA", "BRAVO", "CHARLIE"]
        .iter()
        .map(|n| wow.backups(n))
        .collect();
    let syncs = count(&w.lines(), "->");
    wow.save_with_toon("ALPHA", "Quiet-Test");
    for other in ["BRAVO", "CHARLIE"] {
        w.wait_until("the save to reach the others", || {
            wow.has(other, "[\"Quiet-Test\"]")
        });
    }
    // Give a loop every chance to happen, then count writes: the others once, ALPHA never.
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<usize> = ["ALPHA", "BRAVO", "CHARLIE"]
        .iter()
        .map(|n| wow.backups(n))
        .collect();
    assert_eq!(after, [before[0], before[1] + 1, before[2] + 1]);
    assert_eq!(count(&w.lines(), "->"), syncs + 2, "{:#?}", w.lines());
}

#[test]
fn a_truncated_save_never_reaches_the_others_and_is_told_once() {
    let wow = Wow::new();
    let wtf = wow.root().join("_retail_/WTF");
    let w = Watch::start(&wow, &["ALPHA", "BRAVO", "--wtf", wtf.to_str().unwrap()]);
    w.wait_in_step(0);
    let bravo = wow.read("BRAVO");
    let full = with_toon(&wow.read("ALPHA"), "Half-Test");
    wow.game_save("ALPHA", &full[..full.len() / 2]);
    w.wait_for("the truncated file to be noticed", |l| {
        count(l, "ALPHA: cannot be used (") >= 1
    });
    assert!(
        w.lines()
            .iter()
            .any(|l| l.contains("waiting for the next save"))
    );
    assert_eq!(wow.read("BRAVO"), bravo);
    // The game finishes its save: now it goes through.
    wow.game_save("ALPHA", &full);
    w.wait_for("ALPHA to be readable again", |l| {
        count(l, "ALPHA: readable again") >= 1
    });
    w.wait_until("the save to reach BRAVO", || {
        wow.has("BRAVO", "[\"Half-Test\"]")
    });
    assert_eq!(count(&w.lines(), "cannot be used ("), 1);
}

#[test]
fn twenty_quick_saves_cause_few_syncs() {
    let wow = Wow::new();
    let wtf = wow.root().join("_retail_/WTF");
    let w = Watch::start(&wow, &["ALPHA", "BRAVO", "--wtf", wtf.to_str().unwrap()]);
    w.wait_in_step(0);
    let before = count(&w.lines(), "ALPHA -> BRAVO");
    let start = wow.read("ALPHA");
    for n in 1..=20 {
        wow.game_save("ALPHA", &with_toon(&start, &format!("Quick{n}-Test")));
        std::thread::sleep(Duration::from_millis(20));
    }
    w.wait_until("the last save to reach BRAVO", || {
        wow.has("BRAVO", "[\"Quick20-Test\"]")
    });
    std::thread::sleep(Duration::from_secs(1));
    let syncs = count(&w.lines(), "ALPHA -> BRAVO") - before;
    assert!(
        (1..=5).contains(&syncs),
        "{syncs} syncs for 20 saves:\n{}",
        w.lines().join("\n")
    );
}

#[test]
fn polling_works_too_and_a_file_that_disappears_comes_back() {
    let wow = Wow::new();
    let wtf = wow.root().join("_retail_/WTF");
    let w = Watch::start(
        &wow,
        &["ALPHA", "BRAVO", "--poll", "--wtf", wtf.to_str().unwrap()],
    );
    w.wait_in_step(0);
    let alpha = wow.read("ALPHA");
    std::fs::remove_file(wow.file("ALPHA")).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    wow.game_save("ALPHA", &with_toon(&alpha, "Poll-Test"));
    w.wait_until("the save to reach BRAVO by polling", || {
        wow.has("BRAVO", "[\"Poll-Test\"]")
    });
}

#[cfg(unix)]
#[test]
fn sigterm_and_sigint_finish_and_exit_0() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let wow = Wow::new();
        let a = all_retail(&wow);
        let w = Watch::start(&wow, &args(&a));
        w.wait_in_step(0);
        let status = w.signal(sig);
        assert_eq!(status.code(), Some(0), "signal {sig}");
    }
}

#[test]
fn a_second_watcher_of_an_account_is_refused_naming_the_first() {
    let wow = Wow::new();
    let wtf = wow.root().join("_retail_/WTF");
    let w = Watch::start(&wow, &["ALPHA", "BRAVO", "--wtf", wtf.to_str().unwrap()]);
    w.wait_in_step(0);
    let mut second = Watch::start(&wow, &["BRAVO", "CHARLIE", "--wtf", wtf.to_str().unwrap()]);
    let status = second.wait_exit();
    assert_eq!(status.code(), Some(2));
    let text = second.lines().join("\n");
    assert!(
        text.contains("BRAVO is already watched by svsync watch (process"),
        "{text}"
    );
    assert!(
        text.contains(&format!("process {})", w.child.id())),
        "{text}"
    );
}

#[test]
fn json_prints_one_object_per_line_per_event() {
    let wow = Wow::new();
    let mut a = all_retail(&wow);
    a.push("--json".into());
    let w = Watch::start(&wow, &args(&a));
    w.wait_for("in step", |l| l.iter().any(|x| x.contains("\"in_step\"")));
    wow.save_with_toon("CHARLIE", "Json-Test");
    w.wait_until("the save to reach ALPHA", || {
        wow.has("ALPHA", "[\"Json-Test\"]")
    });
    w.wait_for("two sync events after the save", |l| {
        l.iter()
            .filter(|x| x.contains("\"from\":\"CHARLIE\"") && x.contains("\"event\":\"sync\""))
            .count()
            >= 4
    });
    let mut kinds = std::collections::BTreeSet::new();
    for line in w.lines() {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        kinds.insert(v["event"].as_str().unwrap().to_string());
        if v["event"] == "sync" {
            assert!(v["tables"]["roster"]["received"].is_u64(), "{line}");
        }
    }
    for k in ["account", "sync", "in_step"] {
        assert!(kinds.contains(k), "{kinds:?}");
    }
}

/// The accounts of the README's session: a name with a space and a `#`.
#[test]
fn odd_account_names_are_watched() {
    let wow = Wow::new();
    let odd = "123456789#2";
    wow.put("_retail_", odd, &original("CHARLIE"));
    wow.put("_retail_", "MY MAIN", &original("ALPHA"));
    let wtf = wow.root().join("_retail_/WTF");
    let w = Watch::start(&wow, &["MY MAIN", odd, "--wtf", wtf.to_str().unwrap()]);
    w.wait_in_step(0);
    let f = wow.file_in("_retail_", odd);
    assert!(String::from_utf8_lossy(&std::fs::read(&f).unwrap()).contains("202501051930127731"));
}
