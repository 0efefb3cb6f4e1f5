//! `svsync watch` with real file events in temp folders. Waits are generous and bounded; no
//! assertion is about time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::testdata;

const PATIENCE: Duration = Duration::from_secs(60);

struct Watch {
    dir: tempfile::TempDir,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

fn file_in(root: &Path, name: &str) -> PathBuf {
    root.join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua"))
}

impl Watch {
    fn start(extra: &[&str]) -> Watch {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ALPHA", "BRAVO"] {
            let f = file_in(dir.path(), name);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::copy(file_in(&testdata(), name), &f).unwrap();
        }
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("svsync"))
            .env("SVSYNC_STATE_DIR", dir.path().join("state"))
            .arg("watch")
            .arg(dir.path().join("WTF/Account/ALPHA"))
            .arg(dir.path().join("WTF/Account/BRAVO"))
            .args(["--debounce-ms", "300"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let w = Watch { dir, child, lines };
        // The initial sync runs both ways, then svsync waits for saves.
        w.wait_for("the initial sync", |l| count(l, "BRAVO -> ALPHA:") >= 1);
        w
    }

    fn file(&self, name: &str) -> PathBuf {
        file_in(self.dir.path(), name)
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) {
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

    /// Saves a file the way the game does: write a temporary file, then rename it over.
    fn game_save(&self, name: &str, content: &[u8]) {
        let f = self.file(name);
        let tmp = f.with_extension("lua.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &f).unwrap();
    }

    fn backups(&self, name: &str) -> usize {
        svsync::fsio::write::backups(&self.file(name)).len()
    }

    #[cfg(unix)]
    fn interrupt(mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "watch did not stop on Ctrl-C");
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

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// ALPHA's file with Heretanky's record edited later than anywhere else.
fn alpha_edited(n: u32) -> Vec<u8> {
    let text = std::fs::read_to_string(file_in(&testdata(), "ALPHA")).unwrap();
    text.replace("\"Raid Leader\"", &format!("\"Raid Leader {n}\""))
        .replace("20241231054417", &format!("202512310544{:02}", n % 60))
        .into_bytes()
}

fn remote_has(file: &Path, needle: &str) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| t.contains(needle))
}

#[test]
fn a_game_save_on_one_account_reaches_the_other_once() {
    let w = Watch::start(&[]);
    let (a_backups, b_backups) = (w.backups("ALPHA"), w.backups("BRAVO"));
    let syncs_before = count(&w.lines(), "->");
    w.game_save("ALPHA", &alpha_edited(1));
    w.wait_for("the save to reach BRAVO", |l| {
        count(l, "ALPHA -> BRAVO: roster +0 ~1") >= 1
    });
    assert!(remote_has(&w.file("BRAVO"), "Raid Leader 1"));
    // Give a loop every chance to happen, then count writes: BRAVO once, ALPHA never.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(w.backups("BRAVO"), b_backups + 1);
    assert_eq!(w.backups("ALPHA"), a_backups);
    assert_eq!(count(&w.lines(), "->"), syncs_before + 1, "{:?}", w.lines());
    #[cfg(unix)]
    {
        let status = w.interrupt();
        assert_eq!(status.code(), Some(0));
    }
}

#[test]
fn a_truncated_save_never_reaches_the_other_account() {
    let w = Watch::start(&[]);
    let bravo = std::fs::read(w.file("BRAVO")).unwrap();
    let full = alpha_edited(2);
    w.game_save("ALPHA", &full[..full.len() / 2]);
    w.wait_for("the truncated file to be noticed", |l| {
        count(l, "ALPHA: not readable yet") >= 1
    });
    assert_eq!(std::fs::read(w.file("BRAVO")).unwrap(), bravo);
    // The game finishes its save: now it goes through.
    w.game_save("ALPHA", &full);
    w.wait_for("the complete save to reach BRAVO", |l| {
        count(l, "ALPHA -> BRAVO: roster") >= 1
    });
    assert!(remote_has(&w.file("BRAVO"), "Raid Leader 2"));
}

#[test]
fn twenty_quick_saves_cause_few_syncs() {
    let w = Watch::start(&[]);
    let before = count(&w.lines(), "ALPHA -> BRAVO");
    for n in 1..=20 {
        w.game_save("ALPHA", &alpha_edited(n));
        std::thread::sleep(Duration::from_millis(20));
    }
    w.wait_for("the last save to reach BRAVO", |_| {
        remote_has(&w.file("BRAVO"), "Raid Leader 20\"")
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
    let w = Watch::start(&["--poll"]);
    std::fs::remove_file(w.file("ALPHA")).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    w.game_save("ALPHA", &alpha_edited(3));
    w.wait_for("the save to reach BRAVO by polling", |_| {
        remote_has(&w.file("BRAVO"), "Raid Leader 3")
    });
}
