//! Finding SavedVariables files under a path.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

/// Why files could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{}: no such file or folder", .0.display())]
    Missing(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Names the client or svsync leave beside SavedVariables files, never read as data.
pub fn is_side_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".bak") || lower.ends_with(".tmp") || lower.contains(".svsync-")
}

fn is_lua(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !is_side_file(name) && name.to_ascii_lowercase().ends_with(".lua")
}

/// The SavedVariables files a path stands for, sorted.
///
/// A file is itself. A folder stands for every `*.lua` in a `SavedVariables` folder under it
/// (the folder itself included); a folder with no `SavedVariables` folder anywhere under it
/// stands for every `*.lua` under it. `.bak` and `.tmp` files are skipped.
pub fn savedvariables_files(path: &Path) -> Result<Vec<PathBuf>, ListError> {
    let meta = std::fs::metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ListError::Missing(path.to_path_buf())
        } else {
            ListError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut in_sv = Vec::new();
    let mut any = Vec::new();
    for entry in WalkDir::new(path).sort_by_file_name() {
        let entry = entry.map_err(|e| ListError::Io {
            path: e.path().unwrap_or(path).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("folder loop")),
        })?;
        if !entry.file_type().is_file() || !is_lua(entry.path()) {
            continue;
        }
        let under_sv = entry
            .path()
            .parent()
            .into_iter()
            .flat_map(Path::ancestors)
            .any(|a| {
                a.file_name()
                    .is_some_and(|n| n.eq_ignore_ascii_case("SavedVariables"))
            });
        if under_sv {
            in_sv.push(entry.into_path());
        } else {
            any.push(entry.into_path());
        }
    }
    Ok(if in_sv.is_empty() { any } else { in_sv })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_are_recognized() {
        assert!(is_side_file("GuildHelper.lua.bak"));
        assert!(is_side_file("GuildHelper.lua.tmp"));
        assert!(is_side_file("GuildHelper.lua.svsync-20261125T101010.bak"));
        assert!(!is_side_file("GuildHelper.lua"));
    }

    #[test]
    fn lists_files_under_savedvariables_only() {
        let dir = tempfile::tempdir().unwrap();
        let sv = dir.path().join("WTF/Account/A B#1/SavedVariables");
        std::fs::create_dir_all(&sv).unwrap();
        std::fs::write(sv.join("GuildHelper.lua"), "X = 1").unwrap();
        std::fs::write(sv.join("GuildHelper.lua.bak"), "X = 1").unwrap();
        std::fs::write(sv.join("Other.lua.tmp"), "X = 1").unwrap();
        std::fs::write(dir.path().join("WTF/Config.lua"), "X = 1").unwrap();
        let files = savedvariables_files(dir.path()).unwrap();
        assert_eq!(files, vec![sv.join("GuildHelper.lua")]);
    }

    #[test]
    fn a_plain_folder_lists_all_lua_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.lua"), "X = 1").unwrap();
        std::fs::write(dir.path().join("b.txt"), "X = 1").unwrap();
        assert_eq!(
            savedvariables_files(dir.path()).unwrap(),
            vec![dir.path().join("a.lua")]
        );
    }

    #[test]
    fn missing_path_is_its_own_error() {
        assert!(matches!(
            savedvariables_files(Path::new("/no/such/path")),
            Err(ListError::Missing(_))
        ));
    }
}
