//! Watch latency: from a game-like save of account A to account B's updated file.
//!
//! `cargo bench --bench watch_latency [-- --saves 10]`
//!
//! Starts the real `svsync watch` on two temp copies of the sample accounts, then saves A the way
//! the game does (write a temporary file, rename it over) and polls B's file every 2 ms until the
//! change is there. Runs with file events at several debounce settings, and with `--poll`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn file_in(root: &Path, name: &str) -> PathBuf {
    root.join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let saves: u32 = args
        .iter()
        .position(|a| a == "--saves")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let alpha = std::fs::read_to_string(file_in(&testdata, "ALPHA")).expect("sample ALPHA");
    let mut report = String::from(
        "| mode | debounce | saves | median | p90 | max |\n|---|---:|---:|---:|---:|---:|\n",
    );
    println!("{}", report.trim_end());
    for (poll, debounce) in [(false, 100u64), (false, 500), (false, 1000), (true, 1000)] {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["ALPHA", "BRAVO"] {
            let f = file_in(dir.path(), name);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::copy(file_in(&testdata, name), &f).expect("copy");
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_svsync"));
        cmd.env("SVSYNC_STATE_DIR", dir.path().join("state"))
            .arg("watch")
            .arg(dir.path().join("WTF/Account/ALPHA"))
            .arg(dir.path().join("WTF/Account/BRAVO"))
            .args(["--debounce-ms", &debounce.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if poll {
            cmd.arg("--poll");
        }
        let mut child = cmd.spawn().expect("start svsync watch");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Wait for the initial sync in both directions.
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            if line.contains("BRAVO -> ALPHA") {
                break;
            }
        }
        let mut times = Vec::new();
        for n in 0..saves {
            let marker = format!("Raid Leader {n}");
            let text = alpha
                .replace("\"Raid Leader\"", &format!("\"{marker}\""))
                .replace("20241231054417", &format!("2025123105{:04}", n));
            let a = file_in(dir.path(), "ALPHA");
            let b = file_in(dir.path(), "BRAVO");
            let tmp = a.with_extension("lua.tmp");
            std::fs::write(&tmp, text).expect("write");
            let t0 = Instant::now();
            std::fs::rename(&tmp, &a).expect("rename");
            loop {
                if std::fs::read_to_string(&b).is_ok_and(|t| t.contains(&marker)) {
                    times.push(t0.elapsed());
                    break;
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    eprintln!("save {n} never arrived");
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            // Let the watcher settle (its own write of B) before the next save.
            std::thread::sleep(Duration::from_millis(debounce + 300));
        }
        let _ = child.kill();
        let _ = child.wait();
        times.sort();
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
        let pick = |q: f64| {
            times
                .get(((times.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        let row = format!(
            "| {} | {debounce} ms | {} | {} | {} | {} |",
            if poll { "--poll" } else { "file events" },
            times.len(),
            ms(pick(0.5)),
            ms(pick(0.9)),
            ms(pick(1.0))
        );
        println!("{row}");
        report.push_str(&row);
        report.push('\n');
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/watch-latency.md");
    let _ = std::fs::write(&out, &report);
    println!("\nsaved to {}", out.display());
}
