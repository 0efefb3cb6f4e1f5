//! Finding accounts: `WTF/Account/<NAME>/SavedVariables/GuildHelper.lua` under a WoW folder, a
//! flavor folder (`_retail_`, `_classic_`, ...), a `WTF` folder or an account folder.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::model::FILE_NAME;

/// An account that has GuildHelper data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account folder's name (`MYACCOUNT`, `123456789#1`).
    pub name: String,
    /// The flavor folder it belongs to (`_retail_`), when there is one.
    pub flavor: Option<String>,
    /// The account folder.
    pub dir: PathBuf,
    /// Its `SavedVariables/GuildHelper.lua`.
    pub file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("{0}: no such file or folder")]
    Missing(PathBuf),
    #[error("{0}: no GuildHelper.lua here (looked in the folder and in its SavedVariables folder)")]
    NoGuildHelper(PathBuf),
    #[error("no account named `{name}` with GuildHelper data under {wtf}{hint}")]
    UnknownName {
        name: String,
        wtf: PathBuf,
        hint: String,
    },
    #[error("`{name}` matches several accounts under {wtf}: {choices}; give a path instead")]
    Ambiguous {
        name: String,
        wtf: PathBuf,
        choices: String,
    },
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The flavor folder above `.../<flavor>/WTF/Account/<NAME>`.
fn flavor_of(account_dir: &Path) -> Option<String> {
    let account_folder = account_dir.parent()?;
    let wtf = account_folder.parent()?;
    if !wtf
        .file_name()?
        .to_string_lossy()
        .eq_ignore_ascii_case("WTF")
    {
        return None;
    }
    let flavor = name_of(wtf.parent()?);
    (flavor.starts_with('_') && flavor.ends_with('_')).then_some(flavor)
}

fn account_at(dir: &Path, file: PathBuf) -> Account {
    Account {
        name: name_of(dir),
        flavor: flavor_of(dir),
        dir: dir.to_path_buf(),
        file,
    }
}

/// An account named by a path: a `GuildHelper.lua` file (any `.lua` file is taken as one), an
/// account folder, or its `SavedVariables` folder.
pub fn resolve(path: &Path) -> Result<Account, AccountError> {
    let meta = std::fs::metadata(path).map_err(|_| AccountError::Missing(path.to_path_buf()))?;
    if meta.is_file() {
        let sv = path.parent().unwrap_or(Path::new(""));
        let dir = if name_of(sv).eq_ignore_ascii_case("SavedVariables") {
            sv.parent().unwrap_or(sv).to_path_buf()
        } else {
            sv.to_path_buf()
        };
        let mut account = account_at(&dir, path.to_path_buf());
        if account.name.is_empty() || dir.as_os_str().is_empty() {
            account.name = path
                .file_stem()
                .map_or_else(|| "account".into(), |s| s.to_string_lossy().into_owned());
        }
        return Ok(account);
    }
    let direct = path.join(FILE_NAME);
    if direct.is_file() && name_of(path).eq_ignore_ascii_case("SavedVariables") {
        let dir = path.parent().unwrap_or(path);
        return Ok(account_at(dir, direct));
    }
    let nested = path.join("SavedVariables").join(FILE_NAME);
    if nested.is_file() {
        return Ok(account_at(path, nested));
    }
    if direct.is_file() {
        return Ok(account_at(path, direct));
    }
    Err(AccountError::NoGuildHelper(path.to_path_buf()))
}

/// An account whose `GuildHelper.lua` is gone but whose backups are still there (for
/// `restore`): `dir` is the account folder or its `SavedVariables` folder, or, with `wtf`, an
/// account name under that flavor or `WTF` folder.
pub fn with_only_backups(dir: &Path, wtf: Option<&Path>) -> Option<Account> {
    let mut candidates = vec![dir.to_path_buf()];
    if let Some(w) = wtf {
        for base in [w.join("Account"), w.join("WTF").join("Account")] {
            candidates.push(base.join(dir));
        }
    }
    candidates.into_iter().find_map(|d| {
        let (account_dir, file) = if name_of(&d).eq_ignore_ascii_case("SavedVariables") {
            (d.parent()?.to_path_buf(), d.join(FILE_NAME))
        } else {
            (d.clone(), d.join("SavedVariables").join(FILE_NAME))
        };
        let gone = !file.exists();
        (d.is_dir() && gone && !super::write::backups(&file).is_empty())
            .then(|| account_at(&account_dir, file))
    })
}

/// Every account with GuildHelper data under `root` (a WoW folder, a flavor folder, a `WTF`
/// folder, an account folder or a `GuildHelper.lua`), sorted by flavor and name.
pub fn discover(root: &Path) -> Result<Vec<Account>, AccountError> {
    if !root.exists() {
        return Err(AccountError::Missing(root.to_path_buf()));
    }
    if let Ok(one) = resolve(root) {
        return Ok(vec![one]);
    }
    let mut found = Vec::new();
    let walker = WalkDir::new(root)
        .follow_links(true)
        .max_depth(8)
        .into_iter()
        .filter_entry(|e| {
            // Skip folders that never hold accounts (addons, caches, screenshots, logs...).
            let name = e.file_name().to_string_lossy();
            let under_account = e
                .path()
                .parent()
                .is_some_and(|p| name_of(p).eq_ignore_ascii_case("Account"));
            !(e.depth() > 0
                && e.file_type().is_dir()
                && !under_account
                && matches!(
                    name.to_ascii_lowercase().as_str(),
                    "interface"
                        | "cache"
                        | "screenshots"
                        | "logs"
                        | "errors"
                        | "data"
                        | "fonts"
                        | "utils"
                ))
        });
    for entry in walker.flatten() {
        if !entry.file_type().is_file()
            || !entry
                .file_name()
                .to_string_lossy()
                .eq_ignore_ascii_case(FILE_NAME)
        {
            continue;
        }
        let file = entry.path();
        let Some(sv) = file.parent() else { continue };
        if !name_of(sv).eq_ignore_ascii_case("SavedVariables") {
            continue;
        }
        let Some(dir) = sv.parent() else { continue };
        // `WTF/Account/SavedVariables` holds account-wide data of no account: skip it. Per-
        // character folders (`Account/NAME/Realm/Toon/SavedVariables`) are not GuildHelper's.
        let Some(parent) = dir.parent() else { continue };
        if !name_of(parent).eq_ignore_ascii_case("Account") {
            continue;
        }
        found.push(account_at(dir, file.to_path_buf()));
    }
    found.sort_by(|a, b| (&a.flavor, &a.name).cmp(&(&b.flavor, &b.name)));
    Ok(found)
}

/// An account by name under a WoW, flavor or `WTF` folder.
pub fn by_name(wtf: &Path, name: &str) -> Result<Account, AccountError> {
    let all = discover(wtf)?;
    let matches: Vec<&Account> = all.iter().filter(|a| a.name == name).collect();
    match matches.len() {
        1 => Ok(matches[0].clone()),
        0 => {
            let names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
            Err(AccountError::UnknownName {
                name: name.to_string(),
                wtf: wtf.to_path_buf(),
                hint: if names.is_empty() {
                    String::new()
                } else {
                    format!(" (found: {})", names.join(", "))
                },
            })
        }
        _ => Err(AccountError::Ambiguous {
            name: name.to_string(),
            wtf: wtf.to_path_buf(),
            choices: matches
                .iter()
                .map(|a| a.file.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "GuildHelper_SavedVariables = {}\n").unwrap();
        p
    }

    #[test]
    fn finds_accounts_across_flavors_and_odd_names() {
        let tmp = tempfile::tempdir().unwrap();
        let wow = tmp.path().join("World of Warcraft");
        touch(
            &wow,
            "_retail_/WTF/Account/123456789#1/SavedVariables/GuildHelper.lua",
        );
        touch(
            &wow,
            "_retail_/WTF/Account/MY ACCOUNT/SavedVariables/GuildHelper.lua",
        );
        touch(
            &wow,
            "_classic_/WTF/Account/CLASSIC/SavedVariables/GuildHelper.lua",
        );
        touch(&wow, "_retail_/WTF/Account/SavedVariables/GuildHelper.lua");
        touch(
            &wow,
            "_retail_/WTF/Account/OTHER/SavedVariables/Details.lua",
        );
        touch(
            &wow,
            "_retail_/WTF/Account/MY ACCOUNT/SavedVariables/GuildHelper.lua.bak",
        );
        touch(
            &wow,
            "_retail_/WTF/Account/MY ACCOUNT/Realm/Toon/SavedVariables/GuildHelper.lua",
        );
        touch(
            &wow,
            "_retail_/Interface/AddOns/GuildHelper/GuildHelper.lua",
        );
        let found = discover(&wow).unwrap();
        let names: Vec<(Option<&str>, &str)> = found
            .iter()
            .map(|a| (a.flavor.as_deref(), a.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (Some("_classic_"), "CLASSIC"),
                (Some("_retail_"), "123456789#1"),
                (Some("_retail_"), "MY ACCOUNT"),
            ]
        );
        let wtf = wow.join("_retail_/WTF");
        assert_eq!(by_name(&wtf, "MY ACCOUNT").unwrap().name, "MY ACCOUNT");
        assert!(matches!(
            by_name(&wtf, "NOPE"),
            Err(AccountError::UnknownName { .. })
        ));
    }

    #[test]
    fn resolves_a_file_an_account_folder_or_its_savedvariables() {
        let tmp = tempfile::tempdir().unwrap();
        let file = touch(
            tmp.path(),
            "WTF/Account/A B#1/SavedVariables/GuildHelper.lua",
        );
        let account = tmp.path().join("WTF/Account/A B#1");
        for p in [
            file.clone(),
            account.clone(),
            account.join("SavedVariables"),
        ] {
            let a = resolve(&p).unwrap();
            assert_eq!(a.name, "A B#1");
            assert_eq!(a.file, file);
        }
        assert!(matches!(
            resolve(&tmp.path().join("nope")),
            Err(AccountError::Missing(_))
        ));
        assert!(matches!(
            resolve(tmp.path()),
            Err(AccountError::NoGuildHelper(_))
        ));
    }
}
