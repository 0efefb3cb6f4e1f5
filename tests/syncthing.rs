//! The real carrier: two Syncthing instances on 127.0.0.1 share one folder, and one
//! `svsync watch --mailbox` on each side keeps its own account in step with the other's.
//!
//! Syncthing comes from the system (`.ci/run` installs Debian's package). Where it is not
//! installed the test says so and passes without running; set `SVSYNC_REQUIRE_SYNCTHING=1`
//! (as CI does) to make a missing Syncthing a failure. Every daemon it starts is stopped by
//! PID when the test ends, whatever happens.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mailbox_cli::{Group, exchange, two_pcs};

const PATIENCE: Duration = Duration::from_secs(90);

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One Syncthing instance: its home, device id, API key, ports, and the running daemon.
struct Syncthing {
    home: PathBuf,
    id: String,
    api_key: String,
    gui: u16,
    listen: u16,
    child: Option<Child>,
}

impl Syncthing {
    /// Generates an instance in `home` that talks only to 127.0.0.1: no discovery, relays,
    /// NAT, usage reports, crash reports or upgrades.
    fn new(home: &Path) -> Syncthing {
        let out = Command::new("syncthing")
            .arg("generate")
            .arg(format!("--home={}", home.display()))
            .arg("--no-default-folder")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("syncthing")
            .arg(format!("--home={}", home.display()))
            .arg("--device-id")
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(id.len(), 63, "device id: {id}");
        let (gui, listen) = (free_port(), free_port());
        let config = home.join("config.xml");
        let mut xml = std::fs::read_to_string(&config).unwrap();
        for (from, to) in [
            (
                "<address>127.0.0.1:8384</address>".to_string(),
                format!("<address>127.0.0.1:{gui}</address>"),
            ),
            (
                "<listenAddress>default</listenAddress>".into(),
                format!("<listenAddress>tcp://127.0.0.1:{listen}</listenAddress>"),
            ),
            (
                "<globalAnnounceEnabled>true".into(),
                "<globalAnnounceEnabled>false".into(),
            ),
            (
                "<localAnnounceEnabled>true".into(),
                "<localAnnounceEnabled>false".into(),
            ),
            ("<relaysEnabled>true".into(), "<relaysEnabled>false".into()),
            ("<natEnabled>true".into(), "<natEnabled>false".into()),
            ("<startBrowser>true".into(), "<startBrowser>false".into()),
            ("<urAccepted>0<".into(), "<urAccepted>-1<".into()),
            (
                "<autoUpgradeIntervalH>12<".into(),
                "<autoUpgradeIntervalH>0<".into(),
            ),
            (
                "<crashReportingEnabled>true".into(),
                "<crashReportingEnabled>false".into(),
            ),
        ] {
            assert!(xml.contains(&from), "config.xml has no {from}");
            xml = xml.replacen(&from, &to, 1);
        }
        std::fs::write(&config, &xml).unwrap();
        let api_key = xml
            .split("<apikey>")
            .nth(1)
            .and_then(|r| r.split("</apikey>").next())
            .unwrap()
            .to_string();
        Syncthing {
            home: home.to_path_buf(),
            id,
            api_key,
            gui,
            listen,
            child: None,
        }
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.home.join("syncthing.log")).unwrap();
        let child = Command::new("syncthing")
            .arg("serve")
            .arg(format!("--home={}", self.home.display()))
            .args(["--no-browser", "--no-restart", "--no-upgrade"])
            .env("STNOUPGRADE", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while self.get("/rest/system/ping").is_err() {
            assert!(
                start.elapsed() < PATIENCE,
                "syncthing did not start: {}",
                std::fs::read_to_string(self.home.join("syncthing.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gui)
    }

    fn get(&self, path: &str) -> Result<serde_json::Value, Box<ureq::Error>> {
        let v = ureq::get(&self.url(path))
            .set("X-API-Key", &self.api_key)
            .timeout(Duration::from_secs(5))
            .call()
            .map_err(Box::new)?
            .into_json()
            .unwrap_or_default();
        Ok(v)
    }

    fn post(&self, path: &str, body: serde_json::Value) {
        ureq::post(&self.url(path))
            .set("X-API-Key", &self.api_key)
            .timeout(Duration::from_secs(10))
            .send_json(body)
            .unwrap();
    }

    /// Knows `other` at its static address, and shares `dir` with it (watching the folder,
    /// one second of delay, as a user would set it for svsync).
    fn share(&self, other: &Syncthing, dir: &Path) {
        self.post(
            "/rest/config/devices",
            serde_json::json!({
                "deviceID": other.id,
                "name": "other",
                "addresses": [format!("tcp://127.0.0.1:{}", other.listen)],
            }),
        );
        self.post(
            "/rest/config/folders",
            serde_json::json!({
                "id": "svsync-mailbox",
                "label": "svsync mailbox",
                "path": dir.display().to_string(),
                "type": "sendreceive",
                "devices": [{"deviceID": self.id}, {"deviceID": other.id}],
                "fsWatcherEnabled": true,
                "fsWatcherDelayS": 1,
                "rescanIntervalS": 60,
            }),
        );
    }
}

impl Drop for Syncthing {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A group's mailbox on "PC 1" and an empty folder on "PC 2", shared by two Syncthing instances
/// that have carried the mailbox's marker across (so the carrier works).
struct Carried {
    // Fields drop in order: the daemons stop (by PID) before their folders go.
    _daemons: (Syncthing, Syncthing),
    group: Group,
    one: PathBuf,
    two: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Carried {
    fn new() -> Carried {
        let group = Group::new();
        let tmp = tempfile::tempdir().unwrap();
        let (one, two) = (group.mailbox(), tmp.path().join("PC two's mailbox"));
        std::fs::create_dir_all(&two).unwrap();
        let mut st_one = Syncthing::new(&tmp.path().join("st one"));
        let mut st_two = Syncthing::new(&tmp.path().join("st two"));
        st_one.start();
        st_two.start();
        st_one.share(&st_two, &one);
        st_two.share(&st_one, &two);
        let start = Instant::now();
        let marker = two.join(svsync::transport::mailbox::MARKER);
        while !marker.is_file() {
            assert!(
                start.elapsed() < PATIENCE,
                "Syncthing did not carry the folder; logs:\n{}\n{}",
                std::fs::read_to_string(st_one.home.join("syncthing.log")).unwrap_or_default(),
                std::fs::read_to_string(st_two.home.join("syncthing.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "syncthing connected and carried the marker in {:?}",
            start.elapsed()
        );
        Carried {
            _daemons: (st_one, st_two),
            group,
            one,
            two,
            _tmp: tmp,
        }
    }
}

fn syncthing_missing() -> bool {
    Command::new("syncthing")
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
}

#[test]
fn two_pcs_through_two_real_syncthings() {
    if syncthing_missing() {
        assert!(
            std::env::var_os("SVSYNC_REQUIRE_SYNCTHING").is_none(),
            "SVSYNC_REQUIRE_SYNCTHING is set but `syncthing` cannot be run"
        );
        eprintln!(
            "skipped: `syncthing` is not installed here (`.ci/run` installs it with apt-get)"
        );
        return;
    }
    let carried = Carried::new();
    let (g, dir_one, dir_two) = (&carried.group, &carried.one, &carried.two);
    let (one, two) = two_pcs();
    let started = Instant::now();
    exchange(
        &one,
        &two,
        &g.args_for(dir_one, "PC one"),
        &g.args_for(dir_two, "PC two"),
    );
    eprintln!(
        "two PCs through Syncthing: first exchange, a save each way, a restart: {:?}",
        started.elapsed()
    );
    // Syncthing never carries `.stignore`: PC 2's copy got its own when svsync opened it.
    assert!(dir_two.join(".stignore").is_file());
    // No engine conflict copy of svsync's files: each PC writes only its own.
    let conflicts: Vec<_> = walkdir::WalkDir::new(dir_one)
        .into_iter()
        .chain(walkdir::WalkDir::new(dir_two))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".sync-conflict-"))
        .collect();
    assert!(conflicts.is_empty(), "{conflicts:?}");
}

/// Files that appeared in each outbox of `dir`, by polling (for counting flights).
fn note_flights(dir: &Path, seen: &mut std::collections::BTreeSet<PathBuf>) {
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if e.file_name().to_string_lossy().ends_with(".msgs")
            && let Ok(rel) = e.path().strip_prefix(dir)
        {
            seen.insert(rel.to_path_buf());
        }
    }
}

/// A measurement, not a check: a guild-sized roster (2,000 members) from PC 1 to PC 2 through
/// two real Syncthing instances. Prints the seconds and the flights each side wrote.
///
/// `cargo test --release --test integration -- --ignored --nocapture guild_sized`
#[test]
#[ignore = "a measurement for docs/BENCHMARKS.md"]
fn guild_sized_sync_through_syncthing() {
    if syncthing_missing() {
        eprintln!("skipped: `syncthing` is not installed here");
        return;
    }
    let carried = Carried::new();
    let (g, dir_one, dir_two) = (&carried.group, &carried.one, &carried.two);
    let (one, two) = (crate::watch_cli::Wow::new(), crate::watch_cli::Wow::new());
    let big = svsync::synthetic::guildhelper_file(5_000_000, svsync::lua::Layout::default());
    one.put("_retail_", "ALPHA", &big);
    let w2 = crate::mailbox_cli::watch_pc(&two, &g.args_for(dir_two, "PC two"));
    // PC 2's presence reaches PC 1 first, so that PC 1 starts sending as soon as it runs.
    let start = Instant::now();
    while walkdir::WalkDir::new(dir_one)
        .into_iter()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().ends_with(".msgs"))
    {
        assert!(start.elapsed() < PATIENCE);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut before = std::collections::BTreeSet::new();
    note_flights(dir_one, &mut before);
    let w1 = crate::mailbox_cli::watch_pc(&one, &g.args_for(dir_one, "PC one"));
    let start = Instant::now();
    let mut seen = before.clone();
    let text = String::from_utf8_lossy(&big).into_owned();
    let last_toon = text
        .split("[\"roster\"] = {")
        .nth(1)
        .and_then(|r| r.split('"').nth(1))
        .unwrap()
        .to_string();
    while !(two.has("ALPHA", &last_toon) && w1.lines().iter().any(|l| l.contains("merged there"))) {
        note_flights(dir_one, &mut seen);
        note_flights(dir_two, &mut seen);
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{:?}",
            w1.lines()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    let new: Vec<_> = seen.difference(&before).collect();
    eprintln!(
        "2,000-member roster ({} bytes) PC 1 -> PC 2 through Syncthing: {:.1} s, {} flight files \
         written by the two PCs during the sync",
        big.len(),
        took.as_secs_f64(),
        new.len()
    );
    for f in &new {
        eprintln!("  {}", f.display());
    }
    drop((w1, w2));
}
