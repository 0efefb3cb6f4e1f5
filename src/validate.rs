//! `validate`: checks SavedVariables files and reports findings with line and column.
//!
//! Every file is checked whole against the data subset of Lua 5.1 (including the limits of
//! Lua 5.1's compiler). `GuildHelper.lua` files also get the structure checks of
//! [`crate::model::check`]. Only GuildHelper's synced tables are kept in memory; the rest of a
//! file is checked and dropped as it is read. Files over 8 MiB are read in blocks and only
//! the synced tables' text is held, so a check takes less memory than the file; a file with
//! errors is then read whole, so that every finding is worded and placed as for a small one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::lua::{
    BlocksError, Document, Keep, Limits, LineIndex, ParseOptions, parse_blocks, parse_with,
};
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
    fn new(path: &Path) -> Self {
        FileReport {
            path: path.to_path_buf(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Files larger than this are checked in blocks ([`crate::lua::parse_blocks`]), so that the
/// check takes less memory than the file; smaller ones are read whole.
const BLOCKS_FROM: u64 = 8 << 20;
/// The block size of that check.
const BLOCK: usize = 1 << 20;

fn options(guildhelper: bool) -> ParseOptions<'static> {
    ParseOptions {
        keep: if guildhelper {
            Keep::Paths(KEEP_PATHS)
        } else {
            Keep::Nothing
        },
        limits: Limits::default(),
    }
}

/// Checks the bytes of one file; `path` decides which checks apply and names the file.
pub fn validate_bytes(path: &Path, src: &[u8]) -> FileReport {
    let guildhelper = is_guildhelper_file(path);
    match parse_with(src, &options(guildhelper)) {
        Ok(doc) => report(path, guildhelper, &doc, None),
        Err(e) => {
            let pos = e.position(src);
            let mut report = FileReport::new(path);
            report.errors.push(Finding {
                line: pos.line,
                column: pos.column,
                message: e.message,
            });
            report
        }
    }
}

/// The findings of a file that parsed: `index` is its line index, when there is one at hand.
fn report(
    path: &Path,
    guildhelper: bool,
    doc: &Document<'_>,
    mut index: Option<LineIndex>,
) -> FileReport {
    let mut report = FileReport::new(path);
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
    let issues = check_guildhelper_with(doc, &mut index);
    if issues.is_empty() {
        return report;
    }
    let src = doc.src();
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
    validate_file_with(path, BLOCKS_FROM, BLOCK)
}

fn validate_file_with(path: &Path, blocks_from: u64, block: usize) -> std::io::Result<FileReport> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.len() > blocks_from
        && let Some(report) = validate_in_blocks(path, file, &meta, block)?
    {
        return Ok(report);
    }
    let src = std::fs::read(path)?;
    Ok(validate_bytes(path, &src))
}

/// Checks a large file without holding it: the file is parsed in blocks, then only the text of
/// GuildHelper's synced tables is read again, into a buffer as long as the file whose other
/// pages are never touched (so the system never gives them memory). `None`: the file is not
/// valid, or changed while it was read; the caller reads it whole for the exact findings.
fn validate_in_blocks(
    path: &Path,
    mut file: File,
    meta: &std::fs::Metadata,
    block: usize,
) -> std::io::Result<Option<FileReport>> {
    let guildhelper = is_guildhelper_file(path);
    let Ok(len) = usize::try_from(meta.len()) else {
        return Ok(None);
    };
    let parse = match parse_blocks(&mut file, len, &options(guildhelper), block) {
        Ok(parse) if parse.len == len => parse,
        Ok(_) | Err(BlocksError::NeedsWholeFile) => return Ok(None),
        Err(BlocksError::Io(e)) => return Err(e),
    };
    if !guildhelper {
        let (doc, _) = parse.into_document(&[]);
        return Ok(Some(report(path, false, &doc, None)));
    }
    let mut src = vec![0u8; len];
    for range in parse.text_ranges() {
        file.seek(SeekFrom::Start(range.start as u64))?;
        if file.read_exact(&mut src[range]).is_err() {
            return Ok(None);
        }
    }
    let unchanged = file
        .metadata()
        .is_ok_and(|now| now.len() == meta.len() && now.modified().ok() == meta.modified().ok());
    if !unchanged {
        return Ok(None);
    }
    let (doc, lines) = parse.into_document(&src);
    Ok(Some(report(path, true, &doc, Some(lines))))
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

    /// Checks `path` in blocks of every size in `blocks` and whole, and asserts that they
    /// find the same; returns whether the block check gave its own answer (a file with errors
    /// is handed to the whole check).
    fn blocks_agree(path: &Path, blocks: &[usize]) -> bool {
        let src = std::fs::read(path).unwrap();
        let whole = validate_bytes(path, &src);
        let mut own = true;
        for &block in blocks {
            let file = File::open(path).unwrap();
            let meta = file.metadata().unwrap();
            let in_blocks = validate_in_blocks(path, file, &meta, block).unwrap();
            own &= in_blocks.is_some();
            let found = validate_file_with(path, 0, block).unwrap();
            assert_eq!(found, whole, "{} in blocks of {block}", path.display());
            if let Some(report) = in_blocks {
                assert_eq!(report, whole, "{} in blocks of {block}", path.display());
            }
        }
        own
    }

    #[test]
    fn blocks_find_what_the_whole_file_finds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut checked = 0;
        for entry in walkdir::WalkDir::new(&root) {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "lua") {
                continue;
            }
            let own = blocks_agree(path, &[1, 7, 4096, 1 << 20]);
            // A file that parses is checked in blocks, not handed on.
            let src = std::fs::read(path).unwrap();
            let parses = parse_with(&src, &options(is_guildhelper_file(path))).is_ok();
            assert_eq!(own, parses, "{}", path.display());
            checked += 1;
        }
        assert!(checked >= 15, "{checked} files");
    }

    #[test]
    fn blocks_place_findings_in_generated_files() {
        use crate::synthetic::Spec;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GuildHelper.lua");
        use crate::lua::{Indent, Layout, LineEnding};
        for (indent, line_ending, log_first) in [
            (Indent::Tabs, LineEnding::Lf, false),
            (Indent::Flat, LineEnding::CrLf, true),
        ] {
            let layout = Layout {
                indent,
                line_ending,
            };
            let mut spec = Spec::new(300_000, layout);
            spec.array_news = 40;
            spec.array_news_share_id = true;
            spec.log_first = log_first;
            spec.remote_members = 30;
            let mut bytes = spec.generate();
            std::fs::write(&path, &bytes).unwrap();
            assert!(blocks_agree(&path, &[3, 1000, 65536]));
            let whole = validate_file_with(&path, u64::MAX, 1).unwrap();
            assert!(!whole.warnings.is_empty(), "the shared ids are found");
            // Damaged at the end: handed to the whole check, which words the error.
            bytes.truncate(bytes.len() - 10);
            std::fs::write(&path, &bytes).unwrap();
            assert!(!blocks_agree(&path, &[1000]));
        }
    }

    /// A finding that quotes a table (a `lastUpdated` that is no stamp) quotes the same text
    /// in blocks, although that table's text lies far from any scalar that is read again.
    #[test]
    fn blocks_quote_tables_far_from_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GuildHelper.lua");
        let src = format!(
            "GuildHelper_SavedVariables = {{\n\t[\"sharedData\"] = {{\n\t\t[\"roster\"] = {{\n\
             \t\t\t[\"Ann-Realm\"] = {{ [\"name\"] = \"Ann-Realm\", [\"lastUpdated\"] = \
             {{ --[[ é {}\n]] 1 }}, }},\n\t\t}},\n\t}},\n}}\n",
            "x".repeat(9000)
        );
        std::fs::write(&path, src).unwrap();
        assert!(blocks_agree(&path, &[5, 100_000]));
        let whole = validate_file_with(&path, u64::MAX, 1).unwrap();
        assert!(
            whole
                .warnings
                .iter()
                .any(|w| w.message.contains("{ --[[ é x")),
            "{whole:?}"
        );
    }

    #[test]
    fn guildhelper_checks_apply_by_name() {
        let src = b"Other = 1\n";
        assert!(validate_bytes(Path::new("Other.lua"), src).is_ok());
        assert!(!validate_bytes(Path::new("GuildHelper.lua"), src).is_ok());
    }
}
