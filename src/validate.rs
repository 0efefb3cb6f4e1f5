//! `validate`: checks SavedVariables files and reports findings with line and column.
//!
//! Every file is read fully and checked against the data subset of Lua 5.1 (including the
//! limits of Lua 5.1's compiler). `GuildHelper.lua` files also get the structure checks of
//! [`crate::model::check`]. Only GuildHelper's synced tables are kept in memory; the rest of a
//! file is checked and dropped as it is read, which keeps memory near the size of the file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::lua::{Keep, Limits, LineIndex, ParseOptions, parse_with};
use crate::model::check::{Severity, check_guildhelper_with};
use crate::model::{KEEP_PATHS, is_guildhelper_file};

/// One finding, as `path:line:column: severity: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The findings of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub path: PathBuf,
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl FileReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Checks the bytes of one file; `path` decides which checks apply and names the file.
pub fn validate_bytes(path: &Path, src: &[u8]) -> FileReport {
    let guildhelper = is_guildhelper_file(path);
    let options = ParseOptions {
        keep: if guildhelper {
            Keep::Paths(KEEP_PATHS)
        } else {
            Keep::Nothing
        },
        limits: Limits::default(),
    };
    let mut report = FileReport {
        path: path.to_path_buf(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let doc = match parse_with(src, &options) {
        Ok(doc) => doc,
        Err(e) => {
            let pos = e.position(src);
            report.errors.push(Finding {
                line: pos.line,
                column: pos.column,
                message: e.message,
            });
            return report;
        }
    };
    if !guildhelper {
        if doc.globals().is_empty() {
            report.warnings.push(Finding {
                line: 1,
                column: 1,
                message: "the file holds no variables (a crash while saving can leave a file \
                          empty; the game then starts the addon with its defaults)"
                    .to_string(),
            });
        }
        return report;
    }
    let mut index = None;
    let issues = check_guildhelper_with(&doc, &mut index);
    if issues.is_empty() {
        return report;
    }
    let index = index.get_or_insert_with(|| LineIndex::new(src));
    for issue in issues {
        let pos = index.position(src, issue.offset);
        let finding = Finding {
            line: pos.line,
            column: pos.column,
            message: issue.message,
        };
        match issue.severity {
            Severity::Error => report.errors.push(finding),
            Severity::Warning => report.warnings.push(finding),
        }
    }
    report
}

/// Reads and checks one file.
pub fn validate_file(path: &Path) -> std::io::Result<FileReport> {
    let src = std::fs::read(path)?;
    Ok(validate_bytes(path, &src))
}

/// Checks many files on all cores; results come back in the order of `paths`.
pub fn validate_files(paths: &[PathBuf]) -> Vec<std::io::Result<FileReport>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len().max(1));
    if workers <= 1 {
        return paths.iter().map(|p| validate_file(p)).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<std::io::Result<FileReport>>>> =
        Mutex::new((0..paths.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let result = validate_file(path);
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(result);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(std::io::Error::other("file was not checked"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_has_position() {
        let r = validate_bytes(Path::new("x/Other.lua"), b"\nX = {\n  a = inf,\n}\n");
        assert_eq!(r.errors.len(), 1);
        assert_eq!((r.errors[0].line, r.errors[0].column), (3, 7));
        assert!(r.errors[0].message.contains("nil"));
    }

    #[test]
    fn guildhelper_checks_apply_by_name() {
        let src = b"Other = 1\n";
        assert!(validate_bytes(Path::new("Other.lua"), src).is_ok());
        assert!(!validate_bytes(Path::new("GuildHelper.lua"), src).is_ok());
    }
}
