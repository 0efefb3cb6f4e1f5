//! `svsync mailbox init DIR --key-file FILE`

use std::path::{Path, PathBuf};

use svsync::failure::Failure;
use svsync::text::printable_path;
use svsync::transport::mailbox::flight::GroupKey;

use super::exit::Exit;
use super::json::MailboxInitDoc;

#[derive(Debug, clap::Args)]
pub struct MailboxArgs {
    #[command(subcommand)]
    pub action: MailboxAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum MailboxAction {
    /// Prepare a shared folder as a group's mailbox and make the group's key.
    Init {
        /// The folder the PCs share (made if missing).
        dir: PathBuf,
        /// Where to write the new group key: outside DIR (copy it to each PC yourself).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
        /// Print exactly one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &MailboxArgs) -> Exit {
    match &args.action {
        MailboxAction::Init {
            dir,
            key_file,
            json,
        } => match init(dir, key_file) {
            Ok(key) => {
                if *json {
                    let doc = MailboxInitDoc {
                        mailbox: dir.display().to_string(),
                        key_file: key_file.display().to_string(),
                        group: key.fingerprint(),
                    };
                    println!("{}", serde_json::to_string(&doc).unwrap_or_default());
                } else {
                    println!(
                        "Prepared the mailbox {} (group {}).\n\
                         The group key is in {}: copy it to each PC yourself (never through the \
                         shared folder), then on each PC run\n  \
                         svsync watch --all --wtf WTF --mailbox {} --group-key-file {}",
                        printable_path(dir),
                        key.fingerprint(),
                        printable_path(key_file),
                        printable_path(dir),
                        printable_path(key_file)
                    );
                }
                Exit::Success
            }
            Err(f) => {
                eprintln!("svsync: {f}");
                Exit::of(&f)
            }
        },
    }
}

/// Whether `file` would be inside `dir` (both as they are on disk, links resolved; parts of
/// the path that do not exist yet are taken as written, `..` included).
fn is_inside(file: &Path, dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    // The longest leading part of the path that exists, resolved; then the rest, lexically.
    let parts: Vec<_> = file.components().collect();
    let Some((base, at)) = (0..=parts.len()).rev().find_map(|n| {
        let head: PathBuf = parts[..n].iter().collect();
        head.canonicalize().ok().map(|c| (c, n))
    }) else {
        return false;
    };
    let mut full = base;
    for part in &parts[at..] {
        match part {
            std::path::Component::ParentDir => {
                full.pop();
            }
            std::path::Component::Normal(name) => full.push(name),
            _ => {}
        }
    }
    full.starts_with(&dir)
}

fn init(dir: &Path, key_file: &Path) -> Result<GroupKey, Failure> {
    std::fs::create_dir_all(dir).map_err(|source| Failure::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    if is_inside(key_file, dir) {
        return Err(Failure::KeyInsideMailbox(dir.to_path_buf()));
    }
    if key_file.exists() {
        return Err(Failure::KeyExists(key_file.to_path_buf()));
    }
    let key = GroupKey::generate().map_err(|e| Failure::GroupKey {
        path: key_file.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_private(key_file, key.to_text().as_bytes()).map_err(|e| Failure::GroupKey {
        path: key_file.to_path_buf(),
        reason: e.to_string(),
    })?;
    svsync::transport::mailbox::init(dir, &key)?;
    Ok(key)
}

/// Writes a new file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}
