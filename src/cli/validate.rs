//! `svsync validate PATH... [--json]`

use std::path::PathBuf;

use svsync::fsio::files::savedvariables_files;
use svsync::text::printable_path;
use svsync::validate::validate_files;

use super::exit::Exit;
use super::json::{FileJson, ValidateDoc};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Files or folders: a .lua file, an account folder, a WTF folder or any folder.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print exactly one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ValidateArgs) -> Exit {
    let mut io_failed = false;
    let mut files = Vec::new();
    for path in &args.paths {
        match savedvariables_files(path) {
            Ok(found) => files.extend(found),
            Err(e) => {
                eprintln!("svsync: {e}");
                io_failed = true;
            }
        }
    }
    let mut reports = Vec::with_capacity(files.len());
    for (path, result) in files.iter().zip(validate_files(&files)) {
        match result {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("svsync: {}: cannot read: {e}", printable_path(path));
                io_failed = true;
            }
        }
    }
    let errors: usize = reports.iter().map(|r| r.errors.len()).sum();
    let warnings: usize = reports.iter().map(|r| r.warnings.len()).sum();
    if args.json {
        let summary = ValidateDoc {
            files: reports.iter().map(FileJson::from).collect(),
            errors,
            warnings,
        };
        match serde_json::to_string(&summary) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("svsync: cannot write JSON: {e}");
                return Exit::Usage;
            }
        }
    } else {
        for report in &reports {
            let path = printable_path(&report.path);
            for f in &report.errors {
                println!(
                    "{path}:{}:{}: error: {}",
                    f.line,
                    f.column,
                    svsync::text::printable(&f.message)
                );
            }
            for f in &report.warnings {
                println!(
                    "{path}:{}:{}: warning: {}",
                    f.line,
                    f.column,
                    svsync::text::printable(&f.message)
                );
            }
        }
        println!(
            "{} checked: {}, {}",
            plural(reports.len(), "file"),
            plural(errors, "error"),
            plural(warnings, "warning")
        );
    }
    if io_failed {
        Exit::Usage
    } else if errors > 0 {
        Exit::Failure
    } else {
        Exit::Success
    }
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
