//! A set of accounts kept in step, and the rule that says when they are.
//!
//! **In step.** With the default target, every account's `sharedDataRemote` holds the merge of
//! every other account's `sharedData`: for every ordered pair (X, Y) of accounts of one flavor,
//! merging X's `sharedData` into Y's `sharedDataRemote` changes nothing. With
//! `--target sharedData`, the same holds for Y's `sharedData`, so every account holds the merge
//! of all. Data reaches every account directly, with no hub.
//!
//! **Cheaply.** A file is read only when its size or time changed, and parsed only when its
//! content did (by a 128-bit content digest). The answer for a pair is kept by the digests of
//! both files, in memory and in the state folder (`cache.json`), so `status` and a `watch` that
//! starts again answer for unchanged files without parsing them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::failure::{DataProblem, Failure};
use crate::fsio::accounts::Account;
use crate::fsio::write::real_path;
use crate::lua::{Keep, LuaValue, ParseOptions, ParsedFile, Table};
use crate::merge::{OpenError, changes};
use crate::model::tables::{TableName, entries};
use crate::model::{SAVED_VARIABLES, SHARED_DATA, SHARED_DATA_REMOTE, Target, shared_table};
use crate::protocol::sender::Source;

/// A digest of a file's content: its length, CRC-32 and a 64-bit Fx hash. Equal digests mean
/// equal content for every purpose of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Digest(#[serde(with = "hex128")] pub u128);

mod hex128 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:032x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let t = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u128::from_str_radix(&t, 16).map_err(serde::de::Error::custom)
    }
}

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        use std::hash::Hasher;
        let mut fx = rustc_hash::FxHasher::default();
        fx.write(bytes);
        let crc = crc32fast::hash(bytes);
        Digest(
            (u128::from(fx.finish()) << 64)
                | (u128::from(crc) << 32)
                | u128::from(bytes.len() as u32),
        )
    }
}

/// What `status` shows of a file: kept by digest so an unchanged file is not parsed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Entries per synced table of `sharedData`, in sync order.
    pub entries: Vec<(TableName, usize)>,
    /// Keys of `characterInfo`.
    pub toons: Vec<String>,
    /// Whether `sharedDataRemote` exists.
    pub remote: bool,
    /// Whether `sharedData` exists.
    pub shared: bool,
}

const KEEP: &[&[&str]] = &[
    &[SAVED_VARIABLES, SHARED_DATA],
    &[SAVED_VARIABLES, SHARED_DATA_REMOTE],
    &[SAVED_VARIABLES, "characterInfo"],
];

/// What a GuildHelper file holds, as this module needs it.
pub struct Contents {
    pub shared: Option<Table>,
    pub remote: Option<Table>,
    pub summary: Summary,
}

impl Contents {
    /// Parses a GuildHelper file (`path` names it in errors).
    pub fn read(path: &Path, bytes: Vec<u8>) -> Result<Contents, Failure> {
        let options = ParseOptions {
            keep: Keep::Paths(KEEP),
            ..ParseOptions::default()
        };
        let parsed = ParsedFile::parse(bytes, &options)
            .map_err(|e| Failure::open(path, OpenError::Parse(e)))?;
        let doc = parsed.doc();
        let data = |e| Failure::Data {
            path: path.to_path_buf(),
            problem: DataProblem::Model(e),
        };
        let shared = shared_table(doc, SHARED_DATA).map_err(data)?;
        let remote = shared_table(doc, SHARED_DATA_REMOTE).map_err(data)?;
        let toons = shared_table(doc, "characterInfo")
            .ok()
            .flatten()
            .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default();
        let summary = Summary {
            entries: TableName::ALL
                .into_iter()
                .map(|t| {
                    let n = shared
                        .as_ref()
                        .and_then(|s| s.get_str(t.as_str()))
                        .and_then(LuaValue::as_table)
                        .map_or(0, |t| entries(t).len());
                    (t, n)
                })
                .collect(),
            toons,
            remote: remote.is_some(),
            shared: shared.is_some(),
        };
        Ok(Contents {
            shared,
            remote,
            summary,
        })
    }
}

/// An account's file, parsed.
struct Loaded {
    digest: Digest,
    shared: Option<Table>,
    target: Option<Table>,
    source: Option<Rc<Source>>,
}

/// What was last seen of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    digest: Digest,
}

/// One account of the set.
pub struct Member {
    pub account: Account,
    /// The file, links resolved: what identifies the account.
    pub real: PathBuf,
    seen: Option<Seen>,
    loaded: Option<Loaded>,
    summary: Option<Summary>,
    /// Why the file cannot be used now (missing, unreadable, does not parse).
    pub problem: Option<Failure>,
}

impl Member {
    pub fn digest(&self) -> Option<Digest> {
        self.seen.map(|s| s.digest)
    }

    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_ref()
    }

    pub fn is_usable(&self) -> bool {
        self.problem.is_none() && self.seen.is_some()
    }
}

/// What [`AccountSet::refresh`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Same content as before (not parsed again).
    Unchanged,
    /// New content, read (and parsed when needed).
    Changed,
    /// The file cannot be used now; see [`Member::problem`].
    Unusable,
}

/// The persisted part: answers and summaries by digest.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    #[serde(default)]
    verdicts: Vec<(Digest, Digest, Target, bool)>,
    #[serde(default)]
    summaries: Vec<(Digest, Summary)>,
}

/// Entries kept in the cache file.
const CACHE_LIMIT: usize = 4096;

/// Accounts kept in step, with what is known about each.
pub struct AccountSet {
    target: Target,
    mix_flavors: bool,
    members: Vec<Member>,
    verdicts: HashMap<(Digest, Digest), bool>,
    summaries: HashMap<Digest, Summary>,
    cache: Option<PathBuf>,
    dirty: bool,
    /// Files parsed so far (for tests and benchmarks: unchanged files are never parsed again).
    pub parses: u64,
}

impl AccountSet {
    /// An empty set syncing into `target`; `cache` is the state folder's `cache.json`, if any.
    pub fn new(target: Target, mix_flavors: bool, cache: Option<&Path>) -> AccountSet {
        let mut set = AccountSet {
            target,
            mix_flavors,
            members: Vec::new(),
            verdicts: HashMap::new(),
            summaries: HashMap::new(),
            cache: cache.map(Path::to_path_buf),
            dirty: false,
            parses: 0,
        };
        if let Some(file) = cache
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
        {
            for (a, b, t, v) in file.verdicts {
                if t == target {
                    set.verdicts.insert((a, b), v);
                }
            }
            set.summaries.extend(file.summaries);
        }
        set
    }

    /// The set of `accounts` (two or more). Named accounts of two flavors are refused unless
    /// `mix_flavors`; with `all` (every account found under a folder) each flavor is its own
    /// group.
    pub fn of(
        accounts: Vec<Account>,
        all: bool,
        target: Target,
        mix_flavors: bool,
        cache: Option<&Path>,
    ) -> Result<AccountSet, Failure> {
        if accounts.len() < 2 && !all {
            return Err(Failure::TooFewAccounts);
        }
        if !all
            && !mix_flavors
            && let Some(other) = accounts.iter().find(|a| a.flavor != accounts[0].flavor)
        {
            let name = |f: &Option<String>| f.clone().unwrap_or_else(|| "plain".into());
            return Err(Failure::FlavorsMixed {
                a: accounts[0].name.clone(),
                fa: name(&accounts[0].flavor),
                b: other.name.clone(),
                fb: name(&other.flavor),
            });
        }
        let mut set = AccountSet::new(target, mix_flavors, cache);
        for a in accounts {
            set.add(a);
        }
        Ok(set)
    }

    pub fn target(&self) -> Target {
        self.target
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Adds an account (once: the same file named twice is one account); returns its index.
    pub fn add(&mut self, account: Account) -> usize {
        let real = real_path(&account.file).unwrap_or_else(|_| account.file.clone());
        if let Some(i) = self.members.iter().position(|m| m.real == real) {
            return i;
        }
        self.members.push(Member {
            account,
            real,
            seen: None,
            loaded: None,
            summary: None,
            problem: None,
        });
        self.members.len() - 1
    }

    /// The index of the account whose file is `path` (links resolved).
    pub fn find(&self, path: &Path) -> Option<usize> {
        let real = real_path(path).unwrap_or_else(|_| path.to_path_buf());
        self.members.iter().position(|m| m.real == real)
    }

    /// The account a file event is about: its `GuildHelper.lua` as named, or the file a link
    /// points to.
    pub fn find_event(&self, path: &Path) -> Option<usize> {
        let name = path.file_name()?;
        let dir = path
            .parent()
            .map(|d| real_path(d).unwrap_or_else(|_| d.to_path_buf()));
        self.members.iter().position(|m| {
            [&m.account.file, &m.real].into_iter().any(|f| {
                f.file_name() == Some(name)
                    && f.parent()
                        .map(|d| real_path(d).unwrap_or_else(|_| d.to_path_buf()))
                        == dir
            })
        })
    }

    /// Whether two accounts may be synced: the same flavor (unless flavors may be mixed).
    pub fn same_group(&self, a: usize, b: usize) -> bool {
        self.mix_flavors || self.members[a].account.flavor == self.members[b].account.flavor
    }

    /// Looks at an account's file again: reads it only if its size or time changed, parses it
    /// only if its content did.
    pub fn refresh(&mut self, i: usize) -> Refresh {
        let m = &self.members[i];
        let meta = match std::fs::metadata(&m.real) {
            Ok(meta) => meta,
            Err(source) => {
                let m = &mut self.members[i];
                m.problem = Some(Failure::Read {
                    path: m.account.file.clone(),
                    source,
                });
                m.seen = None;
                return Refresh::Unusable;
            }
        };
        let (len, modified) = (meta.len(), meta.modified().ok());
        if let Some(seen) = m.seen
            && seen.len == len
            && seen.modified == modified
            && m.problem.is_none()
        {
            return Refresh::Unchanged;
        }
        let bytes = match std::fs::read(&m.real) {
            Ok(b) => b,
            Err(source) => {
                let m = &mut self.members[i];
                m.problem = Some(Failure::Read {
                    path: m.account.file.clone(),
                    source,
                });
                m.seen = None;
                return Refresh::Unusable;
            }
        };
        self.take_bytes(i, bytes, len, modified)
    }

    /// Takes new content of an account's file (read by the caller, or just written by svsync).
    pub fn take_bytes(
        &mut self,
        i: usize,
        bytes: Vec<u8>,
        len: u64,
        modified: Option<SystemTime>,
    ) -> Refresh {
        let digest = Digest::of(&bytes);
        let m = &mut self.members[i];
        let same = m.seen.is_some_and(|s| s.digest == digest) && m.problem.is_none();
        m.seen = Some(Seen {
            len,
            modified,
            digest,
        });
        if same {
            return Refresh::Unchanged;
        }
        m.problem = None;
        m.loaded = None;
        m.summary = self.summaries.get(&digest).cloned();
        // Parsed now only if something asks for the content (a pair without a known answer).
        // Parsed now only if something asks for the content: no summary yet, or a pair without
        // a known answer. Otherwise the bytes are dropped (reading again later is cheaper than
        // holding every file).
        if m.summary.is_none() || self.needs_parse(i) {
            self.parse(i, bytes);
        }
        if self.members[i].problem.is_some() {
            Refresh::Unusable
        } else {
            Refresh::Changed
        }
    }

    /// Whether some pair with this account has no known answer.
    fn needs_parse(&self, i: usize) -> bool {
        let Some(d) = self.members[i].digest() else {
            return false;
        };
        self.members.iter().enumerate().any(|(j, other)| {
            j != i
                && self.same_group(i, j)
                && other.digest().is_some_and(|o| {
                    !self.verdicts.contains_key(&(d, o)) || !self.verdicts.contains_key(&(o, d))
                })
        })
    }

    fn parse(&mut self, i: usize, bytes: Vec<u8>) {
        self.parses += 1;
        let target = self.target;
        let m = &mut self.members[i];
        let digest = m.digest().unwrap_or(Digest(0));
        let c = match Contents::read(&m.account.file, bytes) {
            Ok(c) => c,
            Err(f) => {
                m.problem = Some(f);
                return;
            }
        };
        let target_table = match target {
            Target::SharedData => c.shared.clone(),
            Target::SharedDataRemote => c.remote,
        };
        m.summary = Some(c.summary.clone());
        m.loaded = Some(Loaded {
            digest,
            shared: c.shared,
            target: target_table,
            source: None,
        });
        self.summaries.insert(digest, c.summary);
        self.dirty = true;
    }

    /// Makes sure an account's content is parsed (reading it again if it was not kept).
    fn ensure_loaded(&mut self, i: usize) -> bool {
        let m = &self.members[i];
        let Some(digest) = m.digest() else {
            return false;
        };
        if m.loaded.as_ref().is_some_and(|l| l.digest == digest) {
            return true;
        }
        let Ok(bytes) = std::fs::read(&m.real) else {
            return false;
        };
        if Digest::of(&bytes) != digest {
            // Changed since it was looked at: the next refresh sees it.
            return false;
        }
        self.parse(i, bytes);
        self.members[i].loaded.is_some()
    }

    /// Whether merging `from`'s `sharedData` into `to`'s target changes nothing. `None` when
    /// either file cannot be used now.
    pub fn in_step(&mut self, from: usize, to: usize) -> Option<bool> {
        let (a, b) = (self.members[from].digest()?, self.members[to].digest()?);
        if self.members[from].problem.is_some() || self.members[to].problem.is_some() {
            return None;
        }
        if let Some(v) = self.verdicts.get(&(a, b)) {
            return Some(*v);
        }
        if !self.ensure_loaded(from) || !self.ensure_loaded(to) {
            return None;
        }
        let source = self.members[from].loaded.as_ref()?;
        let target = self.members[to].loaded.as_ref()?;
        let own = match self.target {
            Target::SharedDataRemote => target.shared.as_ref(),
            Target::SharedData => None,
        };
        let v = match &source.shared {
            None => true,
            Some(shared) => !changes(shared, target.target.as_ref(), own),
        };
        self.verdicts.insert((a, b), v);
        self.dirty = true;
        Some(v)
    }

    /// Every ordered pair (from, to) of one group whose receiver is not in step, in order.
    pub fn out_of_step(&mut self) -> Vec<(usize, usize)> {
        let n = self.members.len();
        let mut out = Vec::new();
        for to in 0..n {
            for from in 0..n {
                if from != to && self.same_group(from, to) && self.in_step(from, to) == Some(false)
                {
                    out.push((from, to));
                }
            }
        }
        out
    }

    /// What the account sends (serialized once per content).
    pub fn source(&mut self, i: usize) -> Result<Rc<Source>, Failure> {
        if !self.ensure_loaded(i) {
            return Err(self.members[i]
                .problem
                .take()
                .unwrap_or_else(|| Failure::Data {
                    path: self.members[i].account.file.clone(),
                    problem: DataProblem::NoSharedData,
                }));
        }
        let m = &mut self.members[i];
        let Some(loaded) = m.loaded.as_mut() else {
            return Err(Failure::Data {
                path: m.account.file.clone(),
                problem: DataProblem::NoSharedData,
            });
        };
        if let Some(s) = &loaded.source {
            return Ok(Rc::clone(s));
        }
        let shared = loaded.shared.as_ref().ok_or_else(|| Failure::Data {
            path: m.account.file.clone(),
            problem: DataProblem::NoSharedData,
        })?;
        let source = Rc::new(crate::peer::source::source_from_table(
            &m.account.file,
            shared,
            &m.account.name,
        )?);
        loaded.source = Some(Rc::clone(&source));
        Ok(source)
    }

    /// Writes what is known to the state folder (best effort: it is a cache).
    pub fn save_cache(&mut self) {
        let Some(path) = self.cache.clone().filter(|_| self.dirty) else {
            return;
        };
        let mut verdicts: Vec<(Digest, Digest, Target, bool)> = self
            .verdicts
            .iter()
            .map(|((a, b), v)| (*a, *b, self.target, *v))
            .collect();
        verdicts.sort();
        let live: Vec<Digest> = self.members.iter().filter_map(Member::digest).collect();
        // Answers about the files as they are now come first, so the limit drops old ones.
        verdicts.sort_by_key(|(a, b, _, _)| !(live.contains(a) && live.contains(b)));
        verdicts.truncate(CACHE_LIMIT);
        // Another target's answers in the file stay.
        if let Some(old) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
        {
            verdicts.extend(
                old.verdicts
                    .into_iter()
                    .filter(|(_, _, t, _)| *t != self.target)
                    .take(CACHE_LIMIT),
            );
        }
        let mut summaries: BTreeMap<Digest, Summary> = BTreeMap::new();
        for (d, s) in &self.summaries {
            if live.contains(d) || summaries.len() < CACHE_LIMIT / 4 {
                summaries.insert(*d, s.clone());
            }
        }
        let file = CacheFile {
            verdicts,
            summaries: summaries.into_iter().collect(),
        };
        if let (Ok(bytes), Some(dir)) = (serde_json::to_vec(&file), path.parent()) {
            let _ = std::fs::create_dir_all(dir);
            if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
                use std::io::Write;
                if tmp.write_all(&bytes).is_ok() && tmp.persist(&path).is_ok() {
                    self.dirty = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::accounts::resolve;

    fn copy(root: &Path, name: &str) -> Account {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "testdata/WTF/Account/{name}/SavedVariables/GuildHelper.lua"
        ));
        let dst = root.join(format!("WTF/Account/{name}/SavedVariables/GuildHelper.lua"));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, &dst).unwrap();
        resolve(&dst).unwrap()
    }

    #[test]
    fn unchanged_files_are_not_read_or_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("state/cache.json");
        let mut set = AccountSet::new(Target::SharedDataRemote, false, Some(&cache));
        let a = set.add(copy(dir.path(), "ALPHA"));
        let b = set.add(copy(dir.path(), "BRAVO"));
        assert_eq!(
            set.add(resolve(&set.member(a).account.file.clone()).unwrap()),
            a
        );
        assert_eq!(set.refresh(a), Refresh::Changed);
        assert_eq!(set.refresh(b), Refresh::Changed);
        assert_eq!(set.out_of_step(), [(1, 0), (0, 1)]);
        assert_eq!(set.parses, 2);
        assert_eq!(set.refresh(a), Refresh::Unchanged);
        assert_eq!(set.out_of_step().len(), 2);
        assert_eq!(set.parses, 2);
        set.save_cache();

        // Another process with the same files answers from the cache, parsing nothing.
        let mut again = AccountSet::new(Target::SharedDataRemote, false, Some(&cache));
        let a = again.add(copy_keep(&set, a));
        let b = again.add(copy_keep(&set, b));
        again.refresh(a);
        again.refresh(b);
        assert_eq!(again.out_of_step(), [(1, 0), (0, 1)]);
        assert_eq!(again.parses, 0);
        assert!(again.member(a).summary().unwrap().shared);
    }

    fn copy_keep(set: &AccountSet, i: usize) -> Account {
        set.member(i).account.clone()
    }

    #[test]
    fn a_file_that_does_not_parse_is_unusable_until_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = AccountSet::new(Target::SharedDataRemote, false, None);
        let a = set.add(copy(dir.path(), "ALPHA"));
        let b = set.add(copy(dir.path(), "BRAVO"));
        let file = set.member(a).account.file.clone();
        let good = std::fs::read(&file).unwrap();
        std::fs::write(&file, &good[..good.len() / 2]).unwrap();
        assert_eq!(set.refresh(a), Refresh::Unusable);
        assert!(set.member(a).problem.is_some());
        set.refresh(b);
        assert_eq!(set.in_step(a, b), None);
        assert!(set.out_of_step().is_empty());
        std::fs::write(&file, &good).unwrap();
        assert_eq!(set.refresh(a), Refresh::Changed);
        assert_eq!(set.in_step(a, b), Some(false));
    }

    #[test]
    fn flavors_are_not_mixed() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = AccountSet::new(Target::SharedDataRemote, false, None);
        let a = set.add(copy(dir.path(), "ALPHA"));
        let mut classic = copy(dir.path(), "BRAVO");
        classic.flavor = Some("_classic_".into());
        let b = set.add(classic);
        set.refresh(a);
        set.refresh(b);
        assert!(!set.same_group(a, b));
        assert!(set.out_of_step().is_empty());
    }
}
