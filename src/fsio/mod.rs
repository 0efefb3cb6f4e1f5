//! The file system: finding SavedVariables files and accounts, locks between processes,
//! writing safely.

pub mod accounts;
pub mod files;
pub mod lock;
pub mod write;

/// The state folder: `--state-dir`, else `SVSYNC_STATE_DIR`, else the per-user data folder
/// (`%APPDATA%\svsync`, `~/Library/Application Support/svsync`, `$XDG_DATA_HOME/svsync` or
/// `~/.local/share/svsync`).
pub fn state_dir(explicit: Option<&std::path::Path>) -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("SVSYNC_STATE_DIR") {
        return p;
    }
    let base = if cfg!(windows) {
        env("APPDATA").or_else(|| env("USERPROFILE"))
    } else if cfg!(target_os = "macos") {
        env("HOME").map(|h| h.join("Library/Application Support"))
    } else {
        env("XDG_DATA_HOME").or_else(|| env("HOME").map(|h| h.join(".local/share")))
    };
    base.unwrap_or_else(std::env::temp_dir).join("svsync")
}
