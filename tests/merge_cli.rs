//! `svsync merge`, `status` and `sessions` through the real binary, on temp copies of
//! `testdata/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

use crate::support::testdata;

pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    /// A WoW folder with the sample accounts in `_retail_`.
    pub fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &testdata().join("WTF"),
            &dir.path().join("World of Warcraft/_retail_/WTF"),
        );
        Tree { dir }
    }

    pub fn wtf(&self) -> PathBuf {
        self.dir.path().join("World of Warcraft/_retail_/WTF")
    }

    pub fn account(&self, name: &str) -> PathBuf {
        self.wtf().join("Account").join(name)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.account(name).join("SavedVariables/GuildHelper.lua")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state dir")
    }

    pub fn svsync(&self) -> Command {
        let mut c = Command::cargo_bin("svsync").unwrap();
        c.env("SVSYNC_STATE_DIR", self.state());
        c
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

pub fn backups(file: &Path) -> Vec<PathBuf> {
    svsync::fsio::write::backups(file)
}

#[test]
fn merge_in_place_keeps_a_backup_and_writes_logs() {
    let t = Tree::new();
    let before = std::fs::read(t.file("BRAVO")).unwrap();
    let out = t
        .svsync()
        .args(["merge"])
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(
        text.contains("CHARLIE -> BRAVO (sharedDataRemote)"),
        "{text}"
    );
    assert!(
        text.contains("roster     received     4  added    2  updated    1"),
        "{text}"
    );
    assert!(
        text.contains("in game this transfer would take about"),
        "{text}"
    );
    let b = backups(&t.file("BRAVO"));
    assert_eq!(b.len(), 1);
    assert_eq!(std::fs::read(&b[0]).unwrap(), before);
    assert_ne!(std::fs::read(t.file("BRAVO")).unwrap(), before);
    assert!(t.state().join("logs/sender.log").exists());
    assert!(t.state().join("logs/receiver.log").exists());
    // The backup is ignored by validate and by discovery.
    t.svsync().arg("validate").arg(t.wtf()).assert().success();
    // Merging again changes nothing and writes nothing.
    let out = t
        .svsync()
        .args(["merge"])
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    assert!(stdout(out.get_output()).contains("already up to date"));
    assert_eq!(backups(&t.file("BRAVO")).len(), 1);
}

#[test]
fn json_output_has_the_documented_shape() {
    let t = Tree::new();
    let out = t
        .svsync()
        .args(["merge", "ALPHA", "BRAVO", "--json", "--wtf"])
        .arg(t.dir.path().join("World of Warcraft"))
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert!(v["session"].as_str().unwrap().len() == 8);
    let tables = v["tables"].as_object().unwrap();
    let names: Vec<&str> = tables.keys().map(String::as_str).collect();
    assert_eq!(names, ["setup", "news", "guildInfo", "calendar", "roster"]);
    for counts in tables.values() {
        let keys: Vec<&str> = counts
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "received",
                "added",
                "updated",
                "unchanged",
                "kept_newer",
                "conflicts",
                "skipped"
            ]
        );
    }
    assert_eq!(v["tables"]["roster"]["kept_newer"], 2);
    assert_eq!(
        v["written"],
        Value::String(t.file("BRAVO").display().to_string())
    );
}

#[test]
fn dry_run_writes_nothing() {
    let t = Tree::new();
    let before = std::fs::read(t.file("BRAVO")).unwrap();
    let out = t
        .svsync()
        .args(["merge", "--dry-run", "--json"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert_eq!(v["written"], Value::Null);
    assert_eq!(v["changes"], true);
    assert_eq!(v["tables"]["news"]["added"], 2);
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), before);
    assert!(backups(&t.file("BRAVO")).is_empty());
    assert!(!t.state().join("sessions.json").exists());
}

#[test]
fn output_file_leaves_the_receiver_alone() {
    let t = Tree::new();
    let before = std::fs::read(t.file("CHARLIE")).unwrap();
    let merged = t.dir.path().join("merged file.lua");
    t.svsync()
        .args(["merge", "--target", "sharedData", "--output"])
        .arg(&merged)
        .arg(t.file("ALPHA"))
        .arg(t.account("CHARLIE").join("SavedVariables"))
        .assert()
        .success();
    assert_eq!(std::fs::read(t.file("CHARLIE")).unwrap(), before);
    t.svsync().arg("validate").arg(&merged).assert().success();
    assert!(
        std::fs::read_to_string(&merged)
            .unwrap()
            .contains("202501051930127731")
    );
}

#[test]
fn truncated_files_are_refused_and_untouched() {
    let t = Tree::new();
    let full = std::fs::read(t.file("BRAVO")).unwrap();
    std::fs::write(t.file("BRAVO"), &full[..full.len() / 2]).unwrap();
    let half = std::fs::read(t.file("BRAVO")).unwrap();
    let out = t
        .svsync()
        .args(["merge"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(1);
    let err = stderr(out.get_output());
    assert!(
        err.starts_with(&format!("svsync: {}:", t.file("BRAVO").display())),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), half);
    assert!(backups(&t.file("BRAVO")).is_empty());

    // A truncated sender: the receiver is not touched either.
    let alpha = std::fs::read(t.file("ALPHA")).unwrap();
    std::fs::write(t.file("ALPHA"), &alpha[..alpha.len() - 10]).unwrap();
    let charlie = std::fs::read(t.file("CHARLIE")).unwrap();
    t.svsync()
        .args(["merge"])
        .arg(t.account("ALPHA"))
        .arg(t.account("CHARLIE"))
        .assert()
        .code(1);
    assert_eq!(std::fs::read(t.file("CHARLIE")).unwrap(), charlie);
    assert!(
        !err.contains("svsync restore"),
        "no backups yet, no hint: {err}"
    );

    // A receiver svsync wrote before, damaged since: the message says where the backups are.
    std::fs::write(t.file("BRAVO"), &full).unwrap();
    t.svsync()
        .args(["merge"])
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let written = std::fs::read(t.file("BRAVO")).unwrap();
    std::fs::write(t.file("BRAVO"), &written[..written.len() / 2]).unwrap();
    let out = t
        .svsync()
        .args(["merge"])
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(1);
    let err = stderr(out.get_output());
    assert!(
        err.contains("backup of this file; `svsync restore"),
        "{err}"
    );
}

#[test]
fn errors_are_plain_sentences_with_exit_2() {
    let t = Tree::new();
    let out = t
        .svsync()
        .args(["merge", "no/such/account"])
        .arg(t.account("BRAVO"))
        .assert()
        .code(2);
    assert_eq!(
        stderr(out.get_output()).trim(),
        "svsync: no/such/account: no such file or folder"
    );
    let empty = t.dir.path().join("empty folder");
    std::fs::create_dir_all(&empty).unwrap();
    let out = t
        .svsync()
        .arg("merge")
        .arg(&empty)
        .arg(t.account("BRAVO"))
        .assert()
        .code(2);
    assert!(stderr(out.get_output()).contains("no GuildHelper.lua here"));
    let out = t
        .svsync()
        .args(["merge", "NOPE", "BRAVO", "--wtf"])
        .arg(t.wtf())
        .assert()
        .code(2);
    assert!(
        stderr(out.get_output()).contains("no account named `NOPE`"),
        "{}",
        stderr(out.get_output())
    );
    let out = t
        .svsync()
        .arg("merge")
        .arg(t.account("BRAVO"))
        .arg(t.file("BRAVO"))
        .assert()
        .code(2);
    assert!(stderr(out.get_output()).contains("the same file"));
    let out = t
        .svsync()
        .args(["merge", "--simulate", "drop=7"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(2);
    assert!(stderr(out.get_output()).contains("between 0 and 1"));
    let out = t
        .svsync()
        .args(["merge", "--target", "elsewhere", "a", "b"])
        .assert()
        .code(2);
    assert!(!stderr(out.get_output()).contains("panicked"));
}

/// svsync as a user whose file permissions apply: as root (as CI runs), through `setpriv` as
/// `nobody`; otherwise as the current user. The tree is opened up so that user can read it.
#[cfg(unix)]
fn unprivileged(t: &Tree) -> std::process::Command {
    use std::os::unix::fs::PermissionsExt;
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = if root {
        for e in walkdir::WalkDir::new(t.dir.path()).into_iter().flatten() {
            let mode = if e.file_type().is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("svsync"));
        c
    } else {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("svsync"))
    };
    std::fs::create_dir_all(t.state()).unwrap();
    std::fs::set_permissions(t.state(), std::fs::Permissions::from_mode(0o777)).unwrap();
    c.env("SVSYNC_STATE_DIR", t.state());
    c
}

#[cfg(unix)]
#[test]
fn a_receiver_folder_without_write_permission_exits_2_and_says_what_to_fix() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tree::new();
    let sv = t.account("BRAVO").join("SavedVariables");
    let before = std::fs::read(t.file("BRAVO")).unwrap();
    let mut c = unprivileged(&t);
    // As the current user, take the write permission away (as root the folder already belongs
    // to another user than the one svsync runs as).
    std::fs::set_permissions(&sv, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = c
        .arg("merge")
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .output()
        .unwrap();
    std::fs::set_permissions(&sv, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(
        err.contains("check that your user may write there"),
        "{err}"
    );
    assert!(
        !err.contains("run it again") && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), before);
}

#[test]
fn output_into_a_missing_folder_exits_2_and_says_what_to_fix() {
    let t = Tree::new();
    let out = t
        .svsync()
        .args(["merge", "--output"])
        .arg(t.dir.path().join("no such folder/merged.lua"))
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(2);
    let err = stderr(out.get_output());
    assert!(err.contains("no such folder"), "{err}");
    assert!(err.contains("check the path"), "{err}");
    assert!(!err.contains("run it again"), "{err}");
}

/// Sessions belong to the sending account, not to the toon it was played with: after the
/// player switches characters, a rerun resumes instead of being refused as busy.
#[test]
fn a_rerun_after_a_character_switch_resumes() {
    let t = Tree::new();
    t.svsync()
        .args(["merge", "--simulate", "crash-after=20"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(137);
    let alpha = std::fs::read_to_string(t.file("ALPHA")).unwrap();
    assert!(alpha.contains("[\"userNameRealm\"] = \"Heretanky-Velen\""));
    std::fs::write(
        t.file("ALPHA"),
        alpha.replace(
            "[\"userNameRealm\"] = \"Heretanky-Velen\"",
            "[\"userNameRealm\"] = \"Fatherrahl-Velen\"",
        ),
    )
    .unwrap();
    // The same account, named another way too.
    let out = t
        .svsync()
        .args(["merge", "--json"])
        .arg(t.file("ALPHA"))
        .arg(t.account("BRAVO").join("SavedVariables"))
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert_eq!(v["resumed"], true, "{v}");
    assert_eq!(v["outcome"], "complete");
}

/// An interrupted session keeps the receiver busy for other senders (exit 1, a sentence that
/// says what to do), while the interrupted sender itself resumes.
#[test]
fn a_receiver_in_a_session_with_another_sender_is_busy() {
    let t = Tree::new();
    t.svsync()
        .args(["merge", "--simulate", "crash-after=20"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(137);
    let before = std::fs::read(t.file("BRAVO")).unwrap();
    let out = t
        .svsync()
        .arg("merge")
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(1);
    let text = stdout(out.get_output()) + &stderr(out.get_output());
    assert!(text.contains("busy with a sync from ALPHA"), "{text}");
    assert!(text.contains("sessions reset"), "{text}");
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), before);
    // Another receiver is independent.
    t.svsync()
        .arg("merge")
        .arg(t.account("CHARLIE"))
        .arg(t.account("ALPHA"))
        .assert()
        .success();
    // ALPHA resumes and completes; then CHARLIE gets through.
    let out = t
        .svsync()
        .args(["merge", "--json"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert_eq!(v["resumed"], true);
    t.svsync()
        .arg("merge")
        .arg(t.account("CHARLIE"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
}

#[test]
fn simulated_faults_crash_and_resume_through_the_binary() {
    let t = Tree::new();
    let wire = t.dir.path().join("wire.log");
    t.svsync()
        .args([
            "merge",
            "--simulate",
            "drop=0.1,duplicate=0.05,reorder=0.1,corrupt=0.05,truncate=0.02,seed=7",
            "--wire-log",
        ])
        .arg(&wire)
        .arg(t.account("ALPHA"))
        .arg(t.account("CHARLIE"))
        .assert()
        .success();
    let mut directions = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(&wire).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let m = v["msg"].as_str().unwrap();
        assert!(m.len() <= 255 && !m.contains('\0'));
        directions.insert((
            v["from"].as_str().unwrap().to_string(),
            v["to"].as_str().unwrap().to_string(),
        ));
    }
    // The log says which way each message went.
    assert_eq!(directions.len(), 2, "{directions:?}");
    let before = std::fs::read(t.file("BRAVO")).unwrap();
    let out = t
        .svsync()
        .args(["merge", "--simulate", "crash-after=25"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .code(137);
    assert!(stdout(out.get_output()).is_empty());
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), before);
    let out = t.svsync().args(["sessions", "list"]).assert().success();
    let list = stdout(out.get_output());
    assert!(
        list.contains("receive  ALPHA (Heretanky-Velen) -> BRAVO [sharedDataRemote]  active"),
        "{list}"
    );
    assert!(list.contains("setup      complete    4/4 chunks"), "{list}");
    let out = t
        .svsync()
        .args(["merge", "--json"])
        .arg(t.account("ALPHA"))
        .arg(t.account("BRAVO"))
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    assert_eq!(v["resumed"], true);
    let out = t
        .svsync()
        .args(["sessions", "list", "--json"])
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    let mut states: Vec<(&str, &str)> = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["receiver"]["account"] == "BRAVO")
        .map(|s| (s["role"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    // Each peer keeps its own record of the session (listed by when each started).
    states.sort_unstable();
    assert_eq!(states, [("receive", "complete"), ("send", "complete")]);
    t.svsync().args(["sessions", "reset"]).assert().success();
    let out = t.svsync().args(["sessions", "list"]).assert().success();
    assert!(stdout(out.get_output()).starts_with("No sessions"));
}

#[test]
fn status_finds_accounts_across_flavors_and_odd_names() {
    let t = Tree::new();
    let wow = t.dir.path().join("World of Warcraft");
    copy_dir(
        &t.account("CHARLIE"),
        &wow.join("_classic_/WTF/Account/123456789#1"),
    );
    copy_dir(
        &t.account("ALPHA"),
        &wow.join("_retail_/WTF/Account/MY MAIN"),
    );
    std::fs::create_dir_all(wow.join("_retail_/WTF/Account/SavedVariables")).unwrap();
    std::fs::copy(
        t.file("ALPHA"),
        wow.join("_retail_/WTF/Account/SavedVariables/GuildHelper.lua"),
    )
    .unwrap();
    t.svsync()
        .args(["merge", "MY MAIN", "BRAVO", "--wtf"])
        .arg(wow.join("_retail_"))
        .assert()
        .success();
    let out = t
        .svsync()
        .args(["status", "--json"])
        .arg(&wow)
        .assert()
        .success();
    let v: Value = serde_json::from_str(stdout(out.get_output()).trim()).unwrap();
    let found: Vec<(String, String)> = v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["flavor"].as_str().unwrap().to_string(),
                a["account"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("_classic_", "123456789#1"),
        ("_retail_", "ALPHA"),
        ("_retail_", "BRAVO"),
        ("_retail_", "CHARLIE"),
        ("_retail_", "MY MAIN"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(found, want);
    let bravo = &v["accounts"][2];
    assert_eq!(bravo["entries"]["roster"], 3);
    assert_eq!(bravo["remote"], true);
    assert_eq!(bravo["last_sync"]["from"], "MY MAIN");
    let in_step: Vec<&str> = bravo["in_step_with"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        in_step.contains(&"MY MAIN") && in_step.contains(&"ALPHA"),
        "{in_step:?}"
    );
    let out = t.svsync().arg("status").arg(&wow).assert().success();
    assert!(stdout(out.get_output()).contains("toons     Fatherrahl-Velen, Heretanky-Velen"));
}

/// kill -9 at random moments while merging into a large file: the file is always either the
/// old one or the new one, and a rerun completes.
#[cfg(unix)]
#[test]
fn kill_9_during_merges_into_a_large_file_leaves_it_old_or_new() {
    let t = Tree::new();
    let big = svsync::synthetic::guildhelper_file(24 << 20, svsync::lua::Layout::default());
    std::fs::write(t.file("BRAVO"), &big).unwrap();
    // The result of an uninterrupted merge, made on a copy.
    let probe = t.dir.path().join("probe.lua");
    std::fs::write(&probe, &big).unwrap();
    let state2 = t.dir.path().join("probe state");
    let timer = Instant::now();
    Command::cargo_bin("svsync")
        .unwrap()
        .env("SVSYNC_STATE_DIR", &state2)
        .args(["merge", "--output"])
        .arg(t.dir.path().join("want.lua"))
        .arg(t.file("ALPHA"))
        .arg(&probe)
        .assert()
        .success();
    let full = timer.elapsed();
    let want = std::fs::read(t.dir.path().join("want.lua")).unwrap();
    assert_ne!(want, big);

    let bin = assert_cmd::cargo::cargo_bin("svsync");
    let start = Instant::now();
    let mut kills = 0;
    for round in 0..12u64 {
        let mut child = std::process::Command::new(&bin)
            .env("SVSYNC_STATE_DIR", t.state())
            .args(["merge"])
            .arg(t.file("ALPHA"))
            .arg(t.file("BRAVO"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the whole run (read, transfer, write, rename).
        let at = full.mul_f64(1.2 * ((round * 7919) % 97) as f64 / 97.0);
        std::thread::sleep(at);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            kills += 1;
        }
        let now = std::fs::read(t.file("BRAVO")).unwrap();
        assert!(
            now == big || now == want,
            "round {round}: the file is neither old nor new"
        );
        // A run that finished gives the new file; put the old one back to try again.
        if now == want {
            std::fs::write(t.file("BRAVO"), &big).unwrap();
            for b in backups(&t.file("BRAVO")) {
                let _ = std::fs::remove_file(b);
            }
        }
        // No temporary file is left where the game would see it as an addon file (the lock
        // file stays: deleting it would race with a process about to take it).
        for e in std::fs::read_dir(t.account("BRAVO").join("SavedVariables"))
            .unwrap()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                name.ends_with(".lua")
                    || name.ends_with(".bak")
                    || name.ends_with(".tmp")
                    || name.ends_with(".svsync-lock"),
                "{name}"
            );
        }
        assert!(start.elapsed() < Duration::from_secs(600));
    }
    assert!(kills > 0, "no run was interrupted");
    // A rerun completes and gives the uninterrupted result.
    Command::cargo_bin("svsync")
        .unwrap()
        .env("SVSYNC_STATE_DIR", t.state())
        .args(["merge"])
        .arg(t.file("ALPHA"))
        .arg(t.file("BRAVO"))
        .assert()
        .success();
    assert_eq!(std::fs::read(t.file("BRAVO")).unwrap(), want);
}

/// Account names with spaces and `#`, and a receiver written with CRLF line endings: the merge
/// keeps CRLF everywhere and the file still validates.
#[test]
fn names_with_spaces_and_hash_and_crlf_files() {
    let t = Tree::new();
    let accounts = t.wtf().join("Account");
    copy_dir(&t.account("ALPHA"), &accounts.join("My Main#1"));
    copy_dir(&t.account("BRAVO"), &accounts.join("Alt Account"));
    let alt = accounts.join("Alt Account/SavedVariables/GuildHelper.lua");
    let lf = std::fs::read_to_string(&alt).unwrap().replace("\r\n", "\n");
    std::fs::write(&alt, lf.replace('\n', "\r\n")).unwrap();
    t.svsync()
        .args(["merge", "My Main#1", "Alt Account", "--wtf"])
        .arg(t.wtf())
        .assert()
        .success();
    let merged = std::fs::read(&alt).unwrap();
    let bare_lf = merged
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || merged[i - 1] != b'\r'))
        .count();
    assert_eq!(bare_lf, 0);
    // BRAVO's layout: ALPHA's news arrive as flat array items.
    assert!(String::from_utf8_lossy(&merged).contains("[\"id\"] = \"202501051930127731\",\r\n"));
    t.svsync().arg("validate").arg(&alt).assert().success();
}

/// Files written with old-Mac CR line endings, or LF-CR: what svsync splices in uses the same.
#[test]
fn cr_only_and_lf_cr_files_keep_their_line_endings() {
    for (name, eol) in [("CR", "\r"), ("LFCR", "\n\r")] {
        let t = Tree::new();
        let bravo = std::fs::read_to_string(t.file("BRAVO"))
            .unwrap()
            .replace("\r\n", "\n");
        std::fs::write(t.file("BRAVO"), bravo.replace('\n', eol)).unwrap();
        t.svsync()
            .arg("merge")
            .arg(t.account("ALPHA"))
            .arg(t.account("BRAVO"))
            .assert()
            .success();
        let merged = std::fs::read(t.file("BRAVO")).unwrap();
        let text = String::from_utf8_lossy(&merged);
        let other = text.replace(eol, "");
        assert!(
            !other.contains('\n') && !other.contains('\r'),
            "{name}: another line ending was spliced in"
        );
        assert!(text.contains("202501051930127731"), "{name}");
        t.svsync()
            .arg("validate")
            .arg(t.file("BRAVO"))
            .assert()
            .success();
        crate::support::lua51_globals(&merged).unwrap();
    }
}

#[test]
fn a_receiver_holding_an_id_twice_keeps_it_once_and_is_told() {
    let t = Tree::new();
    let dup = "GuildHelper_SavedVariables = {\n\t[\"sharedData\"] = {\n\t\t[\"news\"] = {\n\
        \t\t\t{ [\"id\"] = \"202411301924102656\", [\"date\"] = \"2024-12-01 05:09:22\", [\"title\"] = \"first\" },\n\
        \t\t\t{ [\"id\"] = \"202411301924102656\", [\"date\"] = \"2024-12-02 05:09:22\", [\"title\"] = \"second\" },\n\
        \t\t},\n\t},\n}\n";
    std::fs::write(t.file("BRAVO"), dup).unwrap();
    let out = t
        .svsync()
        .args([
            "merge",
            "CHARLIE",
            "BRAVO",
            "--target",
            "sharedData",
            "--wtf",
        ])
        .arg(t.wtf())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("Note: BRAVO's news held 1 record whose id was already there"),
        "{text}"
    );
    let written = std::fs::read_to_string(t.file("BRAVO")).unwrap();
    assert_eq!(
        written.matches("202411301924102656").count(),
        1,
        "{written}"
    );
    assert!(written.contains("second") && !written.contains("\"first\""));
}

#[test]
fn an_older_record_that_would_nest_too_deep_when_converted_is_a_data_error_not_a_bug() {
    let t = Tree::new();
    let original = std::fs::read_to_string(t.file("BRAVO")).unwrap();
    // A flat roster record of BRAVO (one ALPHA lacks) with a value nested as deep as the game
    // loads: converted to ALPHA's envelopes it gains a level.
    let with_depth = |k: usize| {
        // On the record's own line: the file's line endings stay as they are.
        original.replacen(
            "[\"Oldmain-Eonar\"] = {",
            &format!(
                "[\"Oldmain-Eonar\"] = {{ [\"pt_note\"] = {}1{},",
                "{".repeat(k),
                "}".repeat(k)
            ),
            1,
        )
    };
    let validates = |k: usize| {
        std::fs::write(t.file("BRAVO"), with_depth(k)).unwrap();
        t.svsync()
            .arg("validate")
            .arg(t.file("BRAVO"))
            .output()
            .unwrap()
            .status
            .success()
    };
    let (mut ok, mut too_deep) = (1, 400);
    while too_deep - ok > 1 {
        let mid = (ok + too_deep) / 2;
        if validates(mid) {
            ok = mid;
        } else {
            too_deep = mid;
        }
    }
    std::fs::write(t.file("BRAVO"), with_depth(ok)).unwrap();
    assert!(ok > 150 && ok < 399, "the depth search went wrong: {ok}");
    let before = std::fs::read(t.file("ALPHA")).unwrap();
    let merge = || {
        t.svsync()
            .args(["merge", "BRAVO", "ALPHA", "--target", "sharedData", "--wtf"])
            .arg(t.wtf())
            .output()
            .unwrap()
    };
    let out = merge();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}{}", stdout(&out));
    assert!(!err.contains("internal error"), "{err}");
    assert!(
        err.contains("cannot be written") && err.contains("nested"),
        "{err}"
    );
    assert_eq!(std::fs::read(t.file("ALPHA")).unwrap(), before);
    // A read-only receiver is told the same: the record is refused before any file is touched.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.file("ALPHA"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = merge();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}{}", stdout(&out));
    assert!(err.contains("nested"), "{err}");
    assert_eq!(std::fs::read(t.file("ALPHA")).unwrap(), before);
}
