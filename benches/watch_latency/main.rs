//! Watch latency: from a game-like save of one account to the other accounts' updated files.
//!
//! `cargo bench --bench watch_latency [-- --saves 10 --idle 30]`
//!
//! Starts the real `svsync watch` on temp copies of the sample accounts, then saves an account
//! the way the game does (write a temporary file, rename it over) and polls the other files
//! every 2 ms until the change is there.
//!
//! 1. Two accounts (ALPHA, BRAVO) with file events at several debounce settings, and with
//!    `--poll`.
//! 2. Sets of 2, 3, 5 and 8 accounts (copies of ALPHA under other folder names) watched by one
//!    `svsync watch` at the default debounce: per save, the time until every other account's
//!    file holds the new roster member, and the syncs and writes the watch made for it.
//! 3. The same sets left idle (`--idle` seconds) once in step: syncs, files written, and the
//!    watch's CPU time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime};

fn file_in(root: &Path, name: &str) -> PathBuf {
    root.join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua"))
}

/// The value of `--flag N`, or `default`.
fn flag(args: &[String], name: &str, default: u32) -> u32 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// The `q` quantile of sorted values (nearest rank).
fn pick<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// A running `svsync watch` and the lines it prints.
struct Watch {
    child: Child,
    lines: Receiver<String>,
}

impl Watch {
    fn start(dir: &Path, names: &[&str], debounce: u64, poll: bool) -> Watch {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_svsync"));
        cmd.env("SVSYNC_STATE_DIR", dir.join("state"))
            .arg("watch")
            .args(names.iter().map(|n| dir.join(format!("WTF/Account/{n}"))))
            .args(["--debounce-ms", &debounce.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if poll {
            cmd.arg("--poll");
        }
        let mut child = cmd.spawn().expect("start svsync watch");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Watch { child, lines }
    }

    /// The lines printed until one contains `what` (included), waiting at most `timeout`;
    /// `None` if it never came.
    fn until(&self, what: &str, timeout: Duration) -> (Vec<String>, Option<Instant>) {
        let end = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(what);
                    seen.push(line);
                    if done {
                        return (seen, Some(Instant::now()));
                    }
                }
                Err(_) => return (seen, None),
            }
        }
    }

    /// The lines printed so far, without waiting.
    fn drain(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// CPU time used so far (user + system), from `/proc/<pid>/stat`.
    fn cpu(&self) -> Option<Duration> {
        cpu_of(self.child.id())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(target_os = "linux")]
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| Duration::from_secs_f64(ticks as f64 / hz as f64))
}

#[cfg(not(target_os = "linux"))]
fn cpu_of(_pid: u32) -> Option<Duration> {
    None
}

/// A sync line of a text-mode watch: `HH:MM:SS FROM -> TO: what moved; wrote ...`.
struct SyncLine {
    from: String,
    to: String,
    wrote: bool,
}

fn sync_line(line: &str) -> Option<SyncLine> {
    let rest = line.get(9..)?;
    let (from, rest) = rest.split_once(" -> ")?;
    let (to, what) = rest.split_once(": ")?;
    if what.starts_with("failed:") || what == "works again" {
        return None;
    }
    Some(SyncLine {
        from: from.to_string(),
        to: to.to_string(),
        wrote: what.contains("; wrote "),
    })
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, (u64, Option<SystemTime>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => snapshot(&p, out),
            Ok(m) => {
                out.insert(p, (m.len(), m.modified().ok()));
            }
            Err(_) => {}
        }
    }
}

/// Paths added, removed or changed between two snapshots.
fn changed(
    a: &BTreeMap<PathBuf, (u64, Option<SystemTime>)>,
    b: &BTreeMap<PathBuf, (u64, Option<SystemTime>)>,
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = b
        .iter()
        .filter(|(p, v)| a.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    out.extend(a.keys().filter(|p| !b.contains_key(*p)).cloned());
    out
}

/// Two accounts at several debounce settings.
fn debounce_table(saves: u32, testdata: &Path, alpha: &str) -> String {
    let mut report = String::from(
        "| mode | debounce | saves | median | p90 | max |\n|---|---:|---:|---:|---:|---:|\n",
    );
    println!("{}", report.trim_end());
    for (poll, debounce) in [(false, 100u64), (false, 500), (false, 1000), (true, 1000)] {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["ALPHA", "BRAVO"] {
            let f = file_in(dir.path(), name);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::copy(file_in(testdata, name), &f).expect("copy");
        }
        let watch = Watch::start(dir.path(), &["ALPHA", "BRAVO"], debounce, poll);
        // Wait for the initial sync in both directions.
        let _ = watch.until("accounts in step", Duration::from_secs(30));
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
        drop(watch);
        times.sort();
        let row = format!(
            "| {} | {debounce} ms | {} | {} | {} | {} |",
            if poll { "--poll" } else { "file events" },
            times.len(),
            ms(pick(&times, 0.5)),
            ms(pick(&times, 0.9)),
            ms(pick(&times, 1.0))
        );
        println!("{row}");
        report.push_str(&row);
        report.push('\n');
    }
    report
}

/// A new roster member in the `sharedData` of a GuildHelper.lua text, as the addon would add
/// it: a record inserted at the start of the roster table.
fn with_new_member(text: &str, name: &str, stamp: &str) -> String {
    let shared = text
        .find("[\"sharedData\"]")
        .expect("the account has sharedData");
    let roster = shared
        + text[shared..]
            .find("[\"roster\"]")
            .expect("sharedData has a roster");
    let open = roster + text[roster..].find('{').expect("the roster is a table") + 1;
    let record = format!(
        "\n\t\t\t[\"{name}\"] = {{\n\
         \t\t\t\t[\"deleted\"] = false,\n\
         \t\t\t\t[\"tableType\"] = \"roster\",\n\
         \t\t\t\t[\"lastUpdated\"] = \"{stamp}\",\n\
         \t\t\t\t[\"guildName\"] = \"No Rest For The Wicked-Eonar\",\n\
         \t\t\t\t[\"id\"] = \"{name}\",\n\
         \t\t\t\t[\"data\"] = {{\n\
         \t\t\t\t\t[\"mainCharacter\"] = \"NA\",\n\
         \t\t\t\t\t[\"birthdate\"] = \"NA\",\n\
         \t\t\t\t\t[\"itemLevel\"] = 610,\n\
         \t\t\t\t\t[\"class\"] = \"Mage\",\n\
         \t\t\t\t\t[\"faction\"] = \"Horde\",\n\
         \t\t\t\t\t[\"interests\"] = {{\n\t\t\t\t\t}},\n\
         \t\t\t\t\t[\"professions\"] = {{\n\t\t\t\t\t}},\n\
         \t\t\t\t\t[\"name\"] = \"{name}\",\n\
         \t\t\t\t\t[\"guildJoinDate\"] = \"2025-06-01\",\n\
         \t\t\t\t\t[\"roles\"] = {{\n\t\t\t\t\t}},\n\
         \t\t\t\t\t[\"level\"] = 80,\n\
         \t\t\t\t\t[\"battletag\"] = \"NA\",\n\
         \t\t\t\t\t[\"rank\"] = \"Member\",\n\
         \t\t\t\t}},\n\
         \t\t\t}},"
    );
    let mut out = String::with_capacity(text.len() + record.len());
    out.push_str(&text[..open]);
    out.push_str(&record);
    out.push_str(&text[open..]);
    out
}

/// What one save of a set cost.
struct Save {
    /// Until the first and the last other account held the change.
    first: Duration,
    last: Option<Duration>,
    /// Until the watch printed "all N accounts in step".
    in_step: Option<Duration>,
    syncs: usize,
    /// Syncs from the saved account / toward the saved account / between two others.
    from_saver: usize,
    to_saver: usize,
    /// Account files whose modification time changed (the saved account's own save not
    /// counted) and sync lines that say "wrote".
    files_written: usize,
    wrote_lines: usize,
}

/// Results of one set for the report.
struct SetResult {
    n: usize,
    initial_syncs: usize,
    saves: Vec<Save>,
    idle: Option<Idle>,
}

struct Idle {
    secs: u32,
    lines: usize,
    syncs: usize,
    account_writes: usize,
    changed_account_tree: usize,
    changed_state: usize,
    cpu: Option<Duration>,
}

const SET_NAMES: [&str; 8] = [
    "ACCT1", "ACCT2", "ACCT3", "ACCT4", "ACCT5", "ACCT6", "ACCT7", "ACCT8",
];

/// `n` copies of ALPHA watched by one `svsync watch` at the default debounce: `saves` saves
/// (account `k % n` saves the k-th time), then `idle` seconds without a save.
fn run_set(n: usize, saves: u32, idle: u32, alpha: &str) -> SetResult {
    const DEBOUNCE: u64 = 1000;
    let dir = tempfile::tempdir().expect("temp dir");
    let names = &SET_NAMES[..n];
    let files: Vec<PathBuf> = names.iter().map(|a| file_in(dir.path(), a)).collect();
    for f in &files {
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, alpha).expect("copy ALPHA");
    }
    let watch = Watch::start(dir.path(), names, DEBOUNCE, false);
    let in_step_line = format!("all {n} accounts in step");
    let (initial, ok) = watch.until(&in_step_line, Duration::from_secs(120));
    if ok.is_none() {
        eprintln!("{n} accounts: never in step at the start; lines: {initial:?}");
    }
    let initial_syncs = initial.iter().filter_map(|l| sync_line(l)).count();
    let mut result = SetResult {
        n,
        initial_syncs,
        saves: Vec::new(),
        idle: None,
    };
    for k in 0..saves {
        let saver = k as usize % n;
        let marker = format!("\"Benchtoon{k}-Eonar\"");
        let stamp = format!("2025060112{k:04}");
        // The game saves what it loaded (svsync's merges included) plus the new member.
        let text = std::fs::read_to_string(&files[saver]).expect("read the saving account");
        let text = with_new_member(&text, &format!("Benchtoon{k}-Eonar"), &stamp);
        let tmp = files[saver].with_extension("lua.tmp");
        std::fs::write(&tmp, text).expect("write");
        let _ = watch.drain();
        let t0 = Instant::now();
        std::fs::rename(&tmp, &files[saver]).expect("rename");
        let before: Vec<Option<SystemTime>> = files.iter().map(|f| mtime(f)).collect();
        let mut arrived: Vec<Option<Duration>> = (0..n)
            .map(|i| (i == saver).then_some(Duration::ZERO))
            .collect();
        while arrived.iter().any(Option::is_none) && t0.elapsed() < Duration::from_secs(60) {
            for (i, f) in files.iter().enumerate() {
                if arrived[i].is_none()
                    && std::fs::read_to_string(f).is_ok_and(|t| t.contains(&marker))
                {
                    arrived[i] = Some(t0.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (lines, at) = watch.until(&in_step_line, Duration::from_secs(30));
        // Writes that come after the "in step" line would be a loop: give them a moment.
        std::thread::sleep(Duration::from_millis(300));
        let mut lines = lines;
        lines.extend(watch.drain());
        let after: Vec<Option<SystemTime>> = files.iter().map(|f| mtime(f)).collect();
        let syncs: Vec<SyncLine> = lines.iter().filter_map(|l| sync_line(l)).collect();
        let others: Vec<Duration> = arrived
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != saver)
            .filter_map(|(_, d)| *d)
            .collect();
        if others.len() < n - 1 {
            eprintln!(
                "{n} accounts, save {k}: only {} of {} accounts got it",
                others.len(),
                n - 1
            );
        }
        result.saves.push(Save {
            first: others.iter().min().copied().unwrap_or_default(),
            last: (others.len() == n - 1).then(|| others.iter().max().copied().unwrap_or_default()),
            in_step: at.map(|a| a.duration_since(t0)),
            syncs: syncs.len(),
            from_saver: syncs.iter().filter(|s| s.from == names[saver]).count(),
            to_saver: syncs.iter().filter(|s| s.to == names[saver]).count(),
            files_written: before.iter().zip(&after).filter(|(a, b)| a != b).count(),
            wrote_lines: syncs.iter().filter(|s| s.wrote).count(),
        });
        if k == 0 {
            for l in &lines {
                println!("    {l}");
            }
        }
    }
    if idle > 0 {
        // In step now: leave it alone.
        let _ = watch.until(&in_step_line, Duration::from_millis(DEBOUNCE + 500));
        let _ = watch.drain();
        let mut tree0 = BTreeMap::new();
        snapshot(&dir.path().join("WTF"), &mut tree0);
        let mut state0 = BTreeMap::new();
        snapshot(&dir.path().join("state"), &mut state0);
        let cpu0 = watch.cpu();
        let t0 = Instant::now();
        let mut last: Vec<Option<SystemTime>> = files.iter().map(|f| mtime(f)).collect();
        let mut account_writes = 0;
        let mut lines = Vec::new();
        while t0.elapsed() < Duration::from_secs(u64::from(idle)) {
            std::thread::sleep(Duration::from_millis(100));
            for (i, f) in files.iter().enumerate() {
                let m = mtime(f);
                if m != last[i] {
                    account_writes += 1;
                    last[i] = m;
                }
            }
            lines.extend(watch.drain());
        }
        let cpu1 = watch.cpu();
        let mut tree1 = BTreeMap::new();
        snapshot(&dir.path().join("WTF"), &mut tree1);
        let mut state1 = BTreeMap::new();
        snapshot(&dir.path().join("state"), &mut state1);
        for l in &lines {
            println!("    idle: {l}");
        }
        result.idle = Some(Idle {
            secs: idle,
            lines: lines.len(),
            syncs: lines.iter().filter_map(|l| sync_line(l)).count(),
            account_writes,
            changed_account_tree: changed(&tree0, &tree1).len(),
            changed_state: changed(&state0, &state1).len(),
            cpu: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        });
    }
    result
}

/// Sets of 2, 3, 5 and 8 accounts: latency and work per save, then an idle period.
fn sets_tables(saves: u32, idle: u32, alpha: &str) -> String {
    let results: Vec<SetResult> = [2usize, 3, 5, 8]
        .into_iter()
        .map(|n| {
            println!("\n{n} accounts ...");
            run_set(n, saves, idle, alpha)
        })
        .collect();
    let mut report = String::from(
        "| accounts | saves | first other account (median) | last other account: median | p90 | max \
         | \"all in step\" printed (median) | syncs per save | of which from the saver | account files written per save |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &results {
        let mut first: Vec<Duration> = r.saves.iter().map(|s| s.first).collect();
        first.sort();
        let mut last: Vec<Duration> = r.saves.iter().filter_map(|s| s.last).collect();
        last.sort();
        let mut in_step: Vec<Duration> = r.saves.iter().filter_map(|s| s.in_step).collect();
        in_step.sort();
        let range = |v: Vec<usize>| {
            let lo = v.iter().min().copied().unwrap_or_default();
            let hi = v.iter().max().copied().unwrap_or_default();
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        };
        let missed = r.saves.len() - last.len();
        report.push_str(&format!(
            "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.n,
            r.saves.len(),
            if missed > 0 {
                format!(" ({missed} never reached all)")
            } else {
                String::new()
            },
            ms(pick(&first, 0.5)),
            ms(pick(&last, 0.5)),
            ms(pick(&last, 0.9)),
            ms(pick(&last, 1.0)),
            ms(pick(&in_step, 0.5)),
            range(r.saves.iter().map(|s| s.syncs).collect()),
            range(r.saves.iter().map(|s| s.from_saver).collect()),
            range(r.saves.iter().map(|s| s.files_written).collect()),
        ));
    }
    let details: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{} accounts: {} syncs at start; per save: toward the saver {}, \"wrote\" lines {}",
                r.n,
                r.initial_syncs,
                r.saves.iter().map(|s| s.to_saver).sum::<usize>(),
                r.saves.iter().map(|s| s.wrote_lines).sum::<usize>(),
            )
        })
        .collect();
    report.push('\n');
    for d in details {
        report.push_str(&format!("- {d}\n"));
    }
    if idle > 0 {
        report.push_str(
            "\n| accounts | idle | lines printed | syncs | account files written | files changed under WTF | files changed in the state folder | watch CPU (user+sys) | CPU share |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &results {
            let Some(i) = &r.idle else { continue };
            let (cpu, share) = match i.cpu {
                Some(c) => (
                    ms(c),
                    format!("{:.2}%", c.as_secs_f64() * 100.0 / f64::from(i.secs)),
                ),
                None => ("n/a".to_string(), "n/a".to_string()),
            };
            report.push_str(&format!(
                "| {} | {} s | {} | {} | {} | {} | {} | {cpu} | {share} |\n",
                r.n,
                i.secs,
                i.lines,
                i.syncs,
                i.account_writes,
                i.changed_account_tree,
                i.changed_state,
            ));
        }
    }
    println!("\n{report}");
    report
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let saves = flag(&args, "--saves", 10);
    let idle = flag(&args, "--idle", 30);
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let alpha = std::fs::read_to_string(file_in(&testdata, "ALPHA")).expect("sample ALPHA");
    let mut report = debounce_table(saves, &testdata, &alpha);
    report.push('\n');
    report.push_str(&sets_tables(saves, idle, &alpha));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/watch-latency.md");
    let _ = std::fs::write(&out, &report);
    println!("\nsaved to {}", out.display());
}
