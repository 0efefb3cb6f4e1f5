//! Reader benchmark: svsync against the reference Lua 5.1 loader and full_moon, in one run.
//!
//! `cargo bench --bench reader [-- --sizes 1,20,100 --runs 5]`
//!
//! Generates GuildHelper files of each size in both layouts (tabs era with LF, flat era with
//! CRLF), then runs every implementation in its own child process, so each one's peak memory is
//! its own (read with `wait4`). Times are medians over the runs. Results are printed as a
//! Markdown table and saved to `target/bench-results.md`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use svsync::lua::{Indent, Keep, Layout, Limits, LineEnding, ParseOptions, parse_with};

#[path = "../common/lua51.rs"]
mod lua51;

const IMPLS: &[(&str, &str)] = &[
    (
        "svsync validate",
        "the real binary, end to end: start, read, check, report",
    ),
    (
        "svsync reader (tree)",
        "parse keeping every table (in process, file already read)",
    ),
    (
        "svsync reader (values)",
        "parse and build owned values of every global, as Lua builds tables",
    ),
    (
        "svsync reader (no limits)",
        "parse keeping nothing, without replaying Lua's compiler limits",
    ),
    (
        "Lua 5.1 loader",
        "mlua (vendored Lua 5.1.5): compile and run the chunk in an empty env",
    ),
    ("full_moon", "full_moon 3 parse (on a 1 GiB stack)"),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--generate") {
        generate_child(&args[2], &args[3], Path::new(&args[4]));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2], Path::new(&args[3]), args[4].parse().unwrap_or(3));
        return;
    }
    let mut sizes = vec![1usize, 20, 100];
    let mut runs_override = None;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--sizes" => {
                sizes = args[i + 1]
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect();
                i += 1;
            }
            "--runs" => {
                runs_override = args[i + 1].parse().ok();
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    parent(&sizes, runs_override);
}

struct Measured {
    median: Duration,
    peak_kb: u64,
}

fn parent(sizes: &[usize], runs_override: Option<usize>) {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let mut report = String::new();
    report.push_str("| file | implementation | median time | MB/s | time vs Lua 5.1 | peak memory | peak / file size |\n");
    report.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    println!("{}", report.trim_end());
    for &mb in sizes {
        for (name, layout) in [
            (
                "tabs, LF",
                Layout {
                    indent: Indent::Tabs,
                    line_ending: LineEnding::Lf,
                },
            ),
            (
                "flat, CRLF",
                Layout {
                    indent: Indent::Flat,
                    line_ending: LineEnding::CrLf,
                },
            ),
        ] {
            let file = generate(&data_dir, mb, layout);
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            let runs = runs_override.unwrap_or(if mb >= 100 {
                3
            } else if mb >= 20 {
                5
            } else {
                9
            });
            let label = format!("{mb} MB {name}");
            let results: Vec<(&str, Option<Measured>)> = IMPLS
                .iter()
                .map(|(imp, _)| {
                    // full_moon needs ~70x the file in memory and minutes at 100 MB.
                    let skip = *imp == "full_moon" && mb > 20;
                    (
                        *imp,
                        if skip {
                            None
                        } else {
                            measure(imp, &file, runs)
                        },
                    )
                })
                .collect();
            let lua = results
                .iter()
                .find(|(imp, _)| *imp == "Lua 5.1 loader")
                .and_then(|(_, m)| m.as_ref().map(|m| m.median));
            for (imp, m) in &results {
                let line = match m {
                    Some(m) => row(&label, imp, m, size, lua),
                    None if *imp == "full_moon" && mb > 20 => {
                        format!("| {label} | {imp} | not run | | | | |")
                    }
                    None => format!("| {label} | {imp} | failed | | | | |"),
                };
                println!("{line}");
                report.push_str(&line);
                report.push('\n');
            }
        }
    }
    report.push_str("\nImplementations:\n");
    for (imp, what) in IMPLS {
        report.push_str(&format!("- {imp}: {what}\n"));
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results.md");
    let _ = std::fs::write(&out, &report);
    println!("\nsaved to {}", out.display());
}

fn row(label: &str, imp: &str, m: &Measured, size: u64, lua: Option<Duration>) -> String {
    let secs = m.median.as_secs_f64();
    let mbps = size as f64 / 1e6 / secs;
    let vs_lua = match lua {
        Some(lua) if imp != "Lua 5.1 loader" => {
            let ratio = lua.as_secs_f64() / secs;
            if ratio >= 1.0 {
                format!("{ratio:.2}x faster")
            } else {
                format!("{:.2}x slower", 1.0 / ratio)
            }
        }
        _ => String::new(),
    };
    format!(
        "| {label} | {imp} | {:.1} ms | {mbps:.0} | {vs_lua} | {:.1} MB | {:.2} |",
        secs * 1e3,
        m.peak_kb as f64 / 1024.0,
        (m.peak_kb * 1024) as f64 / size as f64
    )
}

fn generate(dir: &Path, mb: usize, layout: Layout) -> PathBuf {
    let tag = match layout.indent {
        Indent::Tabs => "tabs",
        Indent::Flat => "flat",
    };
    // Named GuildHelper.lua so that `svsync validate` runs the GuildHelper checks too.
    let folder = dir.join(format!("{mb}mb-{tag}"));
    let file = folder.join("GuildHelper.lua");
    if !file.exists() {
        // In a child process: children spawned later (by vfork) start with this process's
        // peak memory as theirs, so this process must stay small.
        std::fs::create_dir_all(&folder).expect("create bench-data folder");
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let ok = Command::new(exe)
            .args(["--generate", &mb.to_string(), tag])
            .arg(&file)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not generate {}", file.display());
    }
    file
}

/// Child process: writes one generated file (see [`generate`]).
fn generate_child(mb: &str, tag: &str, file: &Path) {
    let layout = match tag {
        "tabs" => Layout {
            indent: Indent::Tabs,
            line_ending: LineEnding::Lf,
        },
        _ => Layout {
            indent: Indent::Flat,
            line_ending: LineEnding::CrLf,
        },
    };
    let mb: usize = mb.parse().unwrap_or(1);
    let bytes = svsync::synthetic::guildhelper_file(mb * 1_000_000, layout);
    std::fs::write(file, bytes).expect("write bench file");
}

fn measure(imp: &str, file: &Path, runs: usize) -> Option<Measured> {
    if imp == "svsync validate" {
        let mut times = Vec::new();
        let mut peak = 0;
        for _ in 0..runs {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_svsync"));
            cmd.arg("validate").arg(file);
            let start = Instant::now();
            let (ok, kb, _) = run(&mut cmd)?;
            times.push(start.elapsed());
            peak = peak.max(kb);
            if !ok {
                return None;
            }
        }
        times.sort();
        return Some(Measured {
            median: times[times.len() / 2],
            peak_kb: peak,
        });
    }
    let exe = std::env::current_exe().ok()?;
    let mut cmd = Command::new(exe);
    cmd.args(["--child", imp]).arg(file).arg(runs.to_string());
    let (ok, kb, out) = run(&mut cmd)?;
    if !ok {
        eprintln!("{imp} failed: {out}");
        return None;
    }
    let nanos: u64 = out.trim().parse().ok()?;
    Some(Measured {
        median: Duration::from_nanos(nanos),
        peak_kb: kb,
    })
}

/// Runs a command to completion: (success, peak resident memory in KiB, stdout).
#[cfg(unix)]
fn run(cmd: &mut Command) -> Option<(bool, u64, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned and reaps it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        return None;
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Some((ok, usage.ru_maxrss as u64, out))
}

#[cfg(not(unix))]
fn run(cmd: &mut Command) -> Option<(bool, u64, String)> {
    let out = cmd.output().ok()?;
    Some((
        out.status.success(),
        0,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Child process: runs one implementation `runs` times on the file, prints the median in ns.
fn child(imp: &str, file: &Path, runs: usize) {
    let bytes = std::fs::read(file).expect("read bench file");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let ok = match imp {
            "svsync reader (tree)" => parse_with(&bytes, &ParseOptions::default()).is_ok(),
            "svsync reader (values)" => {
                parse_with(&bytes, &ParseOptions::default()).is_ok_and(|doc| {
                    doc.globals().iter().all(|g| {
                        doc.value(g.value)
                            .is_ok_and(|v| std::hint::black_box(v).is_some())
                    })
                })
            }
            "svsync reader (no limits)" => parse_with(
                &bytes,
                &ParseOptions {
                    keep: Keep::Nothing,
                    limits: Limits {
                        lua_compiler_limits: false,
                        ..Limits::default()
                    },
                },
            )
            .is_ok(),
            "Lua 5.1 loader" => lua51(&bytes),
            "full_moon" => full_moon_parse(&bytes),
            _ => false,
        };
        times.push(start.elapsed());
        if !ok {
            eprintln!("{imp} could not read {}", file.display());
            std::process::exit(1);
        }
    }
    times.sort();
    println!("{}", times[times.len() / 2].as_nanos());
}

fn lua51(bytes: &[u8]) -> bool {
    lua51::load(&mlua::Lua::new(), bytes)
}

fn full_moon_parse(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let text = text.to_owned();
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || full_moon::parse(&text).is_ok())
        .ok()
        .and_then(|h| h.join().ok())
        .unwrap_or(false)
}
