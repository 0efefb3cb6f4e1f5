//! The performance table of docs/BENCHMARKS.md: svsync against Lua 5.1 (and LuaJIT) in one run.
//!
//! ```sh
//! cargo bench --bench perf                                  # every row, 5 rounds
//! cargo bench --bench perf -- --rows validate20,merge2k --rounds 7
//! cargo bench --bench perf -- --before /path/to/old/svsync  # an older build side by side
//! cargo bench --bench perf -- --callgrind                   # also count instructions
//! ```
//!
//! Every contender runs as its own child process; CPU time (user + system) and peak resident
//! memory come from `wait4`, so a busy machine slows the wall clock but hardly the CPU time.
//! The contenders of a row run interleaved, round after round, in alternating order, and a
//! ratio is the median of the rounds' ratios (each round's runs were side by side). The files
//! are generated (`svsync::synthetic::Spec`) to look like players' files: `log` lines full of
//! escaped JSON, guild rosters, a 100,000-member roster, a file with repeated ids.
//!
//! The reference is the `lua5.1` program (`dofile` of each file, what the game does at login)
//! when it is installed, else Lua 5.1.5 built into this benchmark; `luajit` when installed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use svsync::lua::{Indent, Layout, LineEnding};

#[path = "../common/lua51.rs"]
mod lua51;
use svsync::synthetic::Spec;

/// One run of one contender.
#[derive(Debug, Clone, Copy)]
struct Sample {
    cpu: f64,
    wall: f64,
    peak_kb: u64,
}

/// A command to measure, and what to do before each run (outside the measurement).
struct Contender {
    name: String,
    argv: Vec<OsString>,
    before_each: Option<Box<dyn Fn()>>,
    /// The contender its ratio is taken against (default: the goal's).
    against: Option<String>,
}

impl Contender {
    fn new(name: impl Into<String>, argv: Vec<OsString>) -> Contender {
        Contender {
            name: name.into(),
            argv,
            before_each: None,
            against: None,
        }
    }
}

struct Goal {
    /// The contender the ratio is taken against (by name).
    against: &'static str,
    max_ratio: f64,
    /// Peak memory at most this many times `memory_base` bytes.
    max_peak: Option<f64>,
    text: &'static str,
}

struct Row {
    key: &'static str,
    title: String,
    contenders: Vec<Contender>,
    /// What peak memory is compared with (bytes) and how it is named.
    memory_base: (u64, &'static str),
    goal: Goal,
}

struct Options {
    rounds: usize,
    rows: Option<Vec<String>>,
    before: Option<PathBuf>,
    callgrind: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--generate") {
        std::process::exit(if generate(&args[2..]) { 0 } else { 1 });
    }
    if args.get(1).map(String::as_str) == Some("--lua-child") {
        std::process::exit(if lua_child(&args[2..]) { 0 } else { 1 });
    }
    let mut options = Options {
        rounds: 5,
        rows: None,
        before: None,
        callgrind: false,
    };
    let mut i = 1;
    while i < args.len() {
        let next = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--rounds" => {
                options.rounds = next.parse().unwrap_or(5).max(1);
                i += 1;
            }
            "--rows" => {
                options.rows = Some(next.split(',').map(str::to_owned).collect());
                i += 1;
            }
            "--before" => {
                options.before = Some(PathBuf::from(next));
                i += 1;
            }
            "--callgrind" => options.callgrind = true,
            _ => {}
        }
        i += 1;
    }
    run(&options);
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/perf")
}

fn tabs() -> Layout {
    Layout {
        indent: Indent::Tabs,
        line_ending: LineEnding::Lf,
    }
}

/// Writes a generated file once (kept between runs) and returns its path.
fn file(name: &str, spec: Spec) -> PathBuf {
    let folder = data_dir().join(name);
    let path = folder.join("GuildHelper.lua");
    let stamp = folder.join("spec.txt");
    let described = format!("{spec:?}");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(described.as_str()) {
        // In a child process: `ru_maxrss` of every later child starts from this process's own
        // peak (children are spawned with vfork), so this process must stay small.
        std::fs::create_dir_all(&folder).expect("create the bench data folder");
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let fields = [
            spec.bytes as u64,
            (spec.layout.indent == Indent::Tabs) as u64,
            (spec.layout.line_ending == LineEnding::CrLf) as u64,
            spec.members,
            spec.entries,
            spec.remote_members,
            spec.array_news,
            spec.array_news_share_id as u64,
            spec.log_first as u64,
            spec.seed,
        ];
        let ok = Command::new(exe)
            .arg("--generate")
            .arg(&path)
            .args(fields.iter().map(u64::to_string))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not generate {}", path.display());
        std::fs::write(&stamp, described).expect("write a bench file");
    }
    path
}

/// Child process: writes one generated file (see [`file`]).
fn generate(args: &[String]) -> bool {
    let Some((path, fields)) = args.split_first() else {
        return false;
    };
    let n: Vec<u64> = fields.iter().filter_map(|f| f.parse().ok()).collect();
    let [
        bytes,
        tabs,
        crlf,
        members,
        entries,
        remote,
        array,
        share,
        log_first,
        seed,
    ] = n[..]
    else {
        return false;
    };
    let spec = Spec {
        bytes: bytes as usize,
        layout: Layout {
            indent: if tabs == 1 {
                Indent::Tabs
            } else {
                Indent::Flat
            },
            line_ending: if crlf == 1 {
                LineEnding::CrLf
            } else {
                LineEnding::Lf
            },
        },
        members,
        entries,
        remote_members: remote,
        array_news: array,
        array_news_share_id: share == 1,
        log_first: log_first == 1,
        seed,
    };
    std::fs::write(path, spec.generate()).is_ok()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

fn os(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_owned()).collect()
}

/// `dofile` of each file: the reference loaders.
fn references(files: &[&Path]) -> Vec<Contender> {
    let script = files
        .iter()
        .map(|f| format!("dofile({:?})", f.display().to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = Vec::new();
    match which("lua5.1") {
        Some(lua) => out.push(Contender::new(
            "Lua 5.1",
            os(&[&lua, &"-e", &script.as_str()]),
        )),
        None => {
            let exe = std::env::current_exe().expect("the benchmark's own path");
            let mut argv = os(&[&exe, &"--lua-child"]);
            argv.extend(files.iter().map(|f| f.as_os_str().to_owned()));
            out.push(Contender::new("Lua 5.1", argv));
        }
    }
    if let Some(jit) = which("luajit") {
        out.push(Contender::new(
            "LuaJIT",
            os(&[&jit, &"-e", &script.as_str()]),
        ));
    }
    out
}

/// The svsync builds to run: this one, and `--before` if given.
fn builds(options: &Options) -> Vec<(String, PathBuf)> {
    let mut out = vec![(
        "svsync".to_owned(),
        PathBuf::from(env!("CARGO_BIN_EXE_svsync")),
    )];
    if let Some(before) = &options.before {
        out.push(("svsync (before)".to_owned(), before.clone()));
    }
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = data_dir().join("scratch").join(name);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// `svsync merge FROM TO --output OUT` with fresh state for every run.
fn merge_contenders(options: &Options, key: &str, from: &Path, to: &Path) -> Vec<Contender> {
    builds(options)
        .into_iter()
        .enumerate()
        .map(|(n, (name, exe))| {
            let dir = scratch(&format!("{key}-{n}"));
            let state = dir.join("state");
            let out = dir.join("out.lua");
            let argv = os(&[
                &exe,
                &"merge",
                &from,
                &to,
                &"--output",
                &out,
                &"--state-dir",
                &state,
            ]);
            let mut c = Contender::new(name, argv);
            c.before_each = Some(Box::new(move || {
                let _ = std::fs::remove_dir_all(&state);
                let _ = std::fs::remove_file(&out);
            }));
            c
        })
        .collect()
}

fn validate_contenders(options: &Options, path: &Path) -> Vec<Contender> {
    builds(options)
        .into_iter()
        .map(|(name, exe)| Contender::new(name, os(&[&exe, &"validate", &path])))
        .collect()
}

fn rows(options: &Options) -> Vec<Row> {
    let wanted = |key: &str| {
        options
            .rows
            .as_ref()
            .is_none_or(|r| r.iter().any(|k| k == key))
    };
    let mut rows = Vec::new();
    for (key, mb, max_ratio, max_peak, text) in [
        ("validate20", 20, 0.30, None, "<= 0.30x Lua 5.1's CPU time"),
        (
            "validate100",
            100,
            0.35,
            Some(1.0),
            "<= 0.35x Lua 5.1; peak <= the file",
        ),
    ] {
        if !wanted(key) {
            continue;
        }
        let path = file(&format!("log{mb}"), Spec::new(mb * 1_000_000, tabs()));
        let mut contenders = validate_contenders(options, &path);
        contenders.extend(references(&[&path]));
        rows.push(Row {
            key,
            title: format!("`validate`, {mb} MB file, log of escaped JSON"),
            contenders,
            memory_base: (size(&path), "the file"),
            goal: Goal {
                against: "Lua 5.1",
                max_ratio,
                max_peak,
                text,
            },
        });
    }
    let flat = Layout {
        indent: Indent::Flat,
        line_ending: LineEnding::CrLf,
    };
    // (key, what, FROM, TO, peak against both files (else TO), max ratio, max peak, goal)
    let merges = [
        (
            "merge2k",
            "2,000-member pair",
            Spec {
                seed: 1,
                ..Spec::new(1_300_000, tabs())
            },
            Spec {
                seed: 2,
                ..Spec::new(1_400_000, tabs())
            },
            true,
            2.0,
            5.0,
            "<= 2x Lua loading both; peak <= 5x the two files",
        ),
        (
            "merge20",
            "20 MB -> 20 MB, TO has a remote roster",
            Spec {
                seed: 3,
                ..Spec::new(20_000_000, tabs())
            },
            Spec {
                seed: 4,
                remote_members: 2000,
                layout: flat,
                ..Spec::new(20_000_000, tabs())
            },
            false,
            0.7,
            3.0,
            "<= 0.7x Lua loading both; peak <= 3x TO",
        ),
        (
            "merge100k",
            "100,000-member rosters",
            Spec {
                seed: 5,
                members: 100_000,
                ..Spec::new(0, tabs())
            },
            Spec {
                seed: 6,
                remote_members: 100_000,
                ..Spec::new(0, tabs())
            },
            false,
            2.0,
            4.0,
            "<= 2x Lua loading both; peak <= 4x TO",
        ),
    ];
    for (key, what, from, to, both, max_ratio, max_peak, text) in merges {
        if !wanted(key) {
            continue;
        }
        let from = file(&format!("{key}-from"), from);
        let to = file(&format!("{key}-to"), to);
        let mut contenders = merge_contenders(options, key, &from, &to);
        contenders.extend(references(&[&from, &to]));
        rows.push(Row {
            key,
            title: format!(
                "`merge --output`, {what} ({:.1} + {:.1} MB)",
                size(&from) as f64 / 1e6,
                size(&to) as f64 / 1e6
            ),
            contenders,
            memory_base: if both {
                (size(&from) + size(&to), "the two files")
            } else {
                (size(&to), "TO")
            },
            goal: Goal {
                against: "Lua 5.1",
                max_ratio,
                max_peak: Some(max_peak),
                text,
            },
        });
    }
    if wanted("duplicates") {
        let spec = Spec {
            log_first: true,
            ..Spec::new(28_000_000, tabs())
        };
        let dups = file(
            "dups",
            Spec {
                array_news: 4001,
                array_news_share_id: true,
                ..spec
            },
        );
        let plain = file(
            "nodups",
            Spec {
                array_news: 4001,
                ..spec
            },
        );
        let mut contenders = Vec::new();
        for (name, exe) in builds(options) {
            contenders.push(Contender::new(
                format!("{name}, no duplicates"),
                os(&[&exe, &"validate", &plain]),
            ));
            let mut c = Contender::new(
                format!("{name}, 4,000 duplicates"),
                os(&[&exe, &"validate", &dups]),
            );
            c.against = Some(format!("{name}, no duplicates"));
            contenders.push(c);
        }
        rows.push(Row {
            key: "duplicates",
            title: "`validate`, 4,000 duplicate ids after a 28 MB log".to_owned(),
            contenders,
            memory_base: (size(&dups), "the file"),
            goal: Goal {
                against: "svsync, no duplicates",
                max_ratio: 1.10,
                max_peak: None,
                text: "within 10% of the file without duplicates",
            },
        });
    }
    rows
}

/// The contender the goal is about: the current build's (the last of its runs in the row).
fn main_contender(row: &Row) -> &str {
    row.contenders
        .iter()
        .filter(|c| c.name.starts_with("svsync") && !c.name.contains("(before)"))
        .filter(|c| c.name != row.goal.against)
        .map(|c| c.name.as_str())
        .next_back()
        .unwrap_or("")
}

fn run(options: &Options) {
    let mut report = String::new();
    let header = "| row | contender | CPU (user+sys), median | ratio to the goal's reference, median of rounds | peak RSS | peak / base | goal | met |\n|---|---|---:|---:|---:|---:|---|---|\n";
    report.push_str(header);
    print!("{header}");
    for row in rows(options) {
        let samples = measure_row(&row, options.rounds);
        for (i, c) in row.contenders.iter().enumerate() {
            let against = c.against.as_deref().unwrap_or(row.goal.against);
            let reference = row.contenders.iter().position(|c| c.name == against);
            let Some(s) = &samples[i] else {
                let line = format!("| {} | {} | failed | | | | | |\n", row.title, c.name);
                print!("{line}");
                report.push_str(&line);
                continue;
            };
            let cpu = median(s.iter().map(|x| x.cpu));
            let peak = median(s.iter().map(|x| x.peak_kb as f64));
            let ratio = reference
                .and_then(|r| samples[r].as_ref())
                .filter(|_| reference != Some(i))
                .map(|r| median(s.iter().zip(r).map(|(a, b)| a.cpu / b.cpu.max(1e-6))));
            let per_base = peak * 1024.0 / row.memory_base.0.max(1) as f64;
            let is_main = c.name == main_contender(&row);
            let met = if is_main {
                let time_ok = ratio.is_none_or(|r| r <= row.goal.max_ratio);
                let memory_ok = row.goal.max_peak.is_none_or(|m| per_base <= m);
                if time_ok && memory_ok {
                    "yes"
                } else {
                    "**no**"
                }
            } else {
                ""
            };
            let line = format!(
                "| {} | {} | {:.3} s | {} | {:.1} MiB | {:.2}x {} | {} | {} |\n",
                row.title,
                c.name,
                cpu,
                ratio.map(|r| format!("{r:.2}x")).unwrap_or_default(),
                peak / 1024.0,
                per_base,
                row.memory_base.1,
                if is_main { row.goal.text } else { "" },
                met,
            );
            print!("{line}");
            report.push_str(&line);
        }
        if options.callgrind {
            let line = instructions(&row);
            print!("{line}");
            report.push_str(&line);
        }
    }
    if options
        .rows
        .as_ref()
        .is_none_or(|r| r.iter().any(|k| k == "syscalls"))
    {
        let text = syscalls(options.rounds.max(9));
        print!("{text}");
        report.push_str(&text);
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-perf.md");
    let _ = std::fs::write(&out, &report);
    println!("\nsaved to {}", out.display());
}

/// Runs every contender `rounds` times, interleaved, in alternating order.
fn measure_row(row: &Row, rounds: usize) -> Vec<Option<Vec<Sample>>> {
    let mut samples: Vec<Option<Vec<Sample>>> = vec![Some(Vec::new()); row.contenders.len()];
    eprint!("{}: ", row.key);
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..row.contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let c = &row.contenders[i];
            if samples[i].is_none() {
                continue;
            }
            if let Some(prepare) = &c.before_each {
                prepare();
            }
            match measure(&c.argv) {
                Some(s) => samples[i].as_mut().map(|v| v.push(s)),
                None => {
                    eprintln!("\n{} failed: {:?}", c.name, c.argv);
                    samples[i] = None;
                    None
                }
            };
        }
        eprint!(".");
    }
    eprintln!();
    samples
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs a command to completion; CPU time and peak memory of the child from `wait4`.
#[cfg(unix)]
fn measure(argv: &[OsString]) -> Option<Sample> {
    let (program, args) = argv.split_first()?;
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned and reaps it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) > 1 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(Sample {
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        wall,
        peak_kb: usage.ru_maxrss as u64,
    })
}

#[cfg(not(unix))]
fn measure(argv: &[OsString]) -> Option<Sample> {
    let (program, args) = argv.split_first()?;
    let start = Instant::now();
    let status = Command::new(program).args(args).status().ok()?;
    let wall = start.elapsed().as_secs_f64();
    (status.code().unwrap_or(2) <= 1).then_some(Sample {
        cpu: wall,
        wall,
        peak_kb: 0,
    })
}

/// Instructions of one run of each contender under callgrind (deterministic, when valgrind is
/// installed).
fn instructions(row: &Row) -> String {
    let Some(valgrind) = which("valgrind") else {
        return format!(
            "| {} | instructions | valgrind not installed | | | | | |\n",
            row.title
        );
    };
    let mut parts = Vec::new();
    for c in &row.contenders {
        if let Some(prepare) = &c.before_each {
            prepare();
        }
        let out = Command::new(&valgrind)
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .args(&c.argv)
            .stdout(Stdio::null())
            .output();
        let count = out.ok().and_then(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .find_map(|l| l.split("Collected :").nth(1).map(|n| n.trim().to_owned()))
        });
        let count: Option<f64> = count.and_then(|n| n.parse().ok());
        parts.push(format!(
            "{} {}",
            c.name,
            count
                .map(|n| format!("{:.2} G", n / 1e9))
                .unwrap_or("?".into())
        ));
    }
    format!(
        "| {} | instructions (callgrind) | {} | | | | | |\n",
        row.title,
        parts.join("; ")
    )
}

/// fsync calls of one in-place merge (strace), and its wall time against `--dry-run`.
fn syscalls(rounds: usize) -> String {
    let from = file(
        "small-from",
        Spec {
            seed: 7,
            ..Spec::new(20_000, tabs())
        },
    );
    let to = file(
        "small-to",
        Spec {
            seed: 8,
            ..Spec::new(20_000, tabs())
        },
    );
    let dir = scratch("syscalls");
    let account = dir.join("TO");
    let target = account.join("GuildHelper.lua");
    let state = dir.join("state");
    let reset = || {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&account);
        let _ = std::fs::copy(&to, &target);
    };
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_svsync"));
    let in_place = os(&[&exe, &"merge", &from, &target, &"--state-dir", &state]);
    let mut dry = in_place.clone();
    dry.push("--dry-run".into());
    let mut fsync = None;
    if let Some(strace) = which("strace") {
        reset();
        let log = data_dir().join("strace.txt");
        let mut argv = os(&[
            &strace,
            &"-f",
            &"-c",
            &"-e",
            &"trace=fsync,fdatasync",
            &"-o",
            &log,
        ]);
        argv.extend(in_place.iter().cloned());
        if measure(&argv).is_some() {
            fsync = std::fs::read_to_string(&log).ok().map(|t| {
                t.lines()
                    .filter(|l| l.contains("fsync") || l.contains("fdatasync"))
                    .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
                    .sum::<u64>()
            });
        }
    }
    let (mut wet, mut dry_runs) = (Vec::new(), Vec::new());
    eprint!("syscalls: ");
    for round in 0..rounds {
        for kind in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            reset();
            let s = measure(if kind == 0 { &in_place } else { &dry });
            if let Some(s) = s {
                if kind == 0 { &mut wet } else { &mut dry_runs }.push(s.wall);
            }
        }
        eprint!(".");
    }
    eprintln!();
    let (w, d) = (median(wet.into_iter()), median(dry_runs.into_iter()));
    format!(
        "\n| one in-place `merge` of a small pair | result | goal | met |\n|---|---:|---|---|\n\
         | fsync calls (strace) | {} | one per table, the file and its folder | |\n\
         | wall, in place / `--dry-run`, medians of {rounds} interleaved | {:.1} ms / {:.1} ms = +{:.0}% | +5% | {} |\n",
        fsync
            .map(|n| n.to_string())
            .unwrap_or("strace not installed".into()),
        w * 1e3,
        d * 1e3,
        (w / d - 1.0) * 100.0,
        if w <= d * 1.05 { "yes" } else { "**no**" }
    )
}

/// Lua 5.1.5 built in: `dofile` of each file in turn, each in an empty environment.
fn lua_child(files: &[String]) -> bool {
    let lua = mlua::Lua::new();
    files
        .iter()
        .all(|f| std::fs::read(f).is_ok_and(|bytes| lua51::load(&lua, &bytes)))
}
