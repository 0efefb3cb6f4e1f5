//! Structure checks of a GuildHelper SavedVariables file, with the place of every finding.
//!
//! These run on the syntax tree (not the owned values) so each finding points at a line and
//! column of the player's file.

use std::collections::HashMap;

use crate::lua::{Document, FieldKey, KeyKind, Kind, Node};

use super::tables::{Container, TableName, stamp_of_date, stamp_of_digits, stamp_of_number};
use super::{SAVED_VARIABLES, SHARED_DATA, SHARED_DATA_REMOTE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, at a byte offset of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub offset: usize,
    pub severity: Severity,
    pub message: String,
}

struct Sink<'i>(Vec<Issue>, &'i mut Option<crate::lua::LineIndex>);

impl Sink<'_> {
    fn error(&mut self, at: Node, message: String) {
        self.0.push(Issue {
            offset: at.span.start as usize,
            severity: Severity::Error,
            message,
        });
    }

    /// The line of `offset`, from one index of the file's lines built on first use (a file
    /// with thousands of repeated ids must not be scanned from the start for each).
    fn line_of(&mut self, src: &[u8], offset: usize) -> usize {
        self.1
            .get_or_insert_with(|| crate::lua::LineIndex::new(src))
            .position(src, offset)
            .line
    }

    fn warning(&mut self, at: Node, message: String) {
        self.0.push(Issue {
            offset: at.span.start as usize,
            severity: Severity::Warning,
            message,
        });
    }
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Nil => "nil",
        Kind::Bool(_) => "a boolean",
        Kind::Number { .. } => "a number",
        Kind::Str { .. } => "a string",
        Kind::Table { .. } | Kind::Skipped | Kind::Deferred => "a table",
    }
}

/// Checks a parsed `GuildHelper.lua`. The document must have been parsed keeping
/// [`super::KEEP_PATHS`] (or everything).
pub fn check_guildhelper(doc: &Document<'_>) -> Vec<Issue> {
    check_guildhelper_with(doc, &mut None)
}

/// [`check_guildhelper`], sharing the file's line index with the caller (built here on first
/// use, when a message names a line; the caller can then place the issues with it).
pub fn check_guildhelper_with(
    doc: &Document<'_>,
    index: &mut Option<crate::lua::LineIndex>,
) -> Vec<Issue> {
    let mut sink = Sink(Vec::new(), index);
    let Some(global) = doc.global(SAVED_VARIABLES) else {
        sink.0.push(Issue {
            offset: 0,
            severity: Severity::Error,
            message: format!(
                "`{SAVED_VARIABLES}` is not defined: the game would start GuildHelper with empty \
                 data and overwrite this file at logout"
            ),
        });
        return sink.0;
    };
    let root = global.value;
    if !matches!(root.kind, Kind::Table { .. }) {
        sink.error(
            root,
            format!(
                "`{SAVED_VARIABLES}` is {}, not a table",
                describe(root.kind)
            ),
        );
        return sink.0;
    }
    for name in [SHARED_DATA, SHARED_DATA_REMOTE] {
        if let Some(field) = doc.get(root, name.as_bytes()) {
            check_shared(doc, name, field.value, &mut sink);
        }
    }
    if let Some(field) = doc.get(root, SHARED_DATA.as_bytes()) {
        check_current_addon(doc, field.value, &mut sink);
    }
    check_target_shape(doc, root, &mut sink);
    sink.0.sort_by_key(|i| i.offset);
    sink.0
}

fn check_shared(doc: &Document<'_>, name: &str, node: Node, sink: &mut Sink) {
    if !matches!(node.kind, Kind::Table { .. }) {
        sink.error(
            node,
            format!("`{name}` is {}, not a table", describe(node.kind)),
        );
        return;
    }
    for table in TableName::ALL {
        let Some(field) = doc.get(node, table.as_str().as_bytes()) else {
            continue;
        };
        let value = field.value;
        if !matches!(value.kind, Kind::Table { .. }) {
            sink.error(
                value,
                format!("`{name}.{table}` is {}, not a table", describe(value.kind)),
            );
            continue;
        }
        check_container(doc, &format!("{name}.{table}"), table, value, sink);
    }
}

/// What GuildHelper 1.0.23f (the current addon) reads in `sharedData`: roster records with
/// `data`, posts keyed by id with `data`, setup records with `data.guilds`. Records it cannot
/// read make it raise Lua errors at login and in its panes; one warning per table, at the first
/// such record, says so.
fn check_current_addon(doc: &Document<'_>, shared: Node, sink: &mut Sink) {
    if !matches!(shared.kind, Kind::Table { .. }) {
        return;
    }
    for table in TableName::ALL {
        let Some(field) = doc.get(shared, table.as_str().as_bytes()) else {
            continue;
        };
        if !matches!(field.value.kind, Kind::Table { .. }) {
            continue;
        }
        let mut unreadable = Vec::new();
        for f in doc.fields(field.value) {
            let record = f.value;
            let data = doc
                .get(record, b"data")
                .map(|d| d.value)
                .filter(|d| matches!(d.kind, Kind::Table { .. }));
            let keyed_by_string = match f.key {
                FieldKey::Name(_) => true,
                FieldKey::Bracket(k) => matches!(k.kind, KeyKind::Str { .. }),
                FieldKey::Positional => false,
            };
            let readable = matches!(record.kind, Kind::Table { .. })
                && match (table, data) {
                    (_, None) => false,
                    (TableName::Setup, Some(d)) => doc
                        .get(d, b"guilds")
                        .is_some_and(|g| matches!(g.value.kind, Kind::Table { .. })),
                    (TableName::Roster, Some(_)) => true,
                    (_, Some(_)) => keyed_by_string,
                };
            if !readable {
                unreadable.push(match f.key {
                    FieldKey::Bracket(k) => doc.key_node(k),
                    _ => record,
                });
            }
        }
        if unreadable.is_empty() {
            continue;
        }
        let n = unreadable.len();
        let what = match table {
            TableName::Roster => "without `data`",
            TableName::Setup => "without `data.guilds`",
            _ if n == 1 => "that is not an envelope keyed by id",
            _ => "that are not envelopes keyed by id",
        };
        let records = if n == 1 { "record" } else { "records" };
        let first = if n > 1 { ", the first here" } else { "" };
        sink.warning(
            unreadable[0],
            format!(
                "`{SHARED_DATA}.{table}` is in the older layout ({n} {records} {what}{first}): \
                 GuildHelper 1.0.23f cannot read it and raises Lua errors at login and in its \
                 panes; only older versions of the addon read this layout"
            ),
        );
    }
}

/// An entry of a container as the checks see it: its place, identity and node.
struct Item {
    at: Node,
    key: Option<Vec<u8>>,
    value: Node,
}

fn check_container(doc: &Document<'_>, path: &str, table: TableName, node: Node, sink: &mut Sink) {
    let mut positional = 0usize;
    let mut indices: Vec<(usize, Node)> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    for field in doc.fields(node) {
        let key = match field.key {
            FieldKey::Positional => {
                positional += 1;
                indices.push((positional, field.value));
                None
            }
            FieldKey::Name(span) => Some(doc.text(span).to_vec()),
            FieldKey::Bracket(k) => match doc.key_node(k) {
                k @ Node {
                    kind: Kind::Number { .. },
                    ..
                } => {
                    match doc
                        .number(k)
                        .filter(|v| v.fract() == 0.0 && *v >= 1.0 && *v < 1e15)
                    {
                        Some(v) => indices.push((v as usize, k)),
                        None => sink.warning(
                            k,
                            format!(
                                "`{path}` has the number key [{}]; GuildHelper expects ids or \
                                 a sequence",
                                String::from_utf8_lossy(doc.text(k.span))
                            ),
                        ),
                    }
                    None
                }
                k => doc.string(k).map(|s| s.into_owned()),
            },
        };
        if !matches!(
            field.value.kind,
            Kind::Table { .. } | Kind::Skipped | Kind::Deferred
        ) {
            sink.warning(
                field.value,
                format!(
                    "an entry of `{path}` is {}, not a record; it cannot be synced and is left \
                     as it is",
                    describe(field.value.kind)
                ),
            );
            continue;
        }
        items.push(Item {
            at: match field.key {
                FieldKey::Bracket(k) => doc.key_node(k),
                _ => field.value,
            },
            key,
            value: field.value,
        });
    }
    check_sequence(path, &indices, sink);

    let mut seen: HashMap<Vec<u8>, Node> = HashMap::new();
    for item in &items {
        let id = check_record(doc, path, table, item, sink);
        if let Some(id) = id {
            if let Some(first) = seen.get(&id) {
                let first_line = sink.line_of(doc.src(), first.span.start as usize);
                sink.warning(
                    item.at,
                    format!(
                        "`{path}` has the id \"{}\" twice (first on line {}); only the first is \
                         matched when merging",
                        String::from_utf8_lossy(&id),
                        first_line
                    ),
                );
            } else {
                seen.insert(id, item.at);
            }
        }
    }
}

/// Number keys must be the sequence 1..n: no holes, no repeats.
fn check_sequence(path: &str, indices: &[(usize, Node)], sink: &mut Sink) {
    let mut sorted: Vec<usize> = indices.iter().map(|(i, _)| *i).collect();
    sorted.sort_unstable();
    for (i, &n) in sorted.iter().enumerate() {
        let expected = i + 1;
        if n != expected {
            let (_, at) = indices
                .iter()
                .find(|(k, _)| *k == n)
                .copied()
                .unwrap_or((n, indices[0].1));
            let problem = if i > 0 && sorted[i - 1] == n {
                format!("the index [{n}] appears twice")
            } else {
                format!("[{n}] follows a hole (no [{expected}])")
            };
            sink.warning(
                at,
                format!(
                    "`{path}` is not a proper array: {problem}; the game may lose entries after \
                     the hole, and the next merge rewrites it as a sequence"
                ),
            );
            return;
        }
    }
}

/// Checks one record and returns its identity.
fn check_record(
    doc: &Document<'_>,
    path: &str,
    table: TableName,
    item: &Item,
    sink: &mut Sink,
) -> Option<Vec<u8>> {
    if !matches!(item.value.kind, Kind::Table { .. }) {
        return item.key.clone();
    }
    let text = |name: &str| {
        doc.get(item.value, name.as_bytes())
            .map(|f| (f.value, doc.string(f.value).map(|s| s.into_owned())))
    };
    let data = doc
        .get(item.value, b"data")
        .map(|f| f.value)
        .filter(|n| matches!(n.kind, Kind::Table { .. }));
    let envelope = data.is_some();
    let label = match &item.key {
        Some(k) => format!("`{path}` entry \"{}\"", String::from_utf8_lossy(k)),
        None => format!("an array entry of `{path}`"),
    };

    let id_field = text("id").and_then(|(node, s)| {
        s.or_else(|| {
            doc.number(node).map(|v| {
                crate::lua::format_number(v)
                    .unwrap_or_default()
                    .into_bytes()
            })
        })
        .map(|s| (node, s))
    });
    let id = match (&item.key, &id_field) {
        (Some(key), Some((node, id))) if key != id && table != TableName::Roster => {
            sink.warning(
                *node,
                format!(
                    "{label} has the id \"{}\"; the key is used as its identity",
                    String::from_utf8_lossy(id)
                ),
            );
            Some(key.clone())
        }
        (Some(key), _) => Some(key.clone()),
        (None, Some((_, id))) => Some(id.clone()),
        (None, None) => {
            let name = if table == TableName::Roster {
                text("pt_name").and_then(|(_, s)| s)
            } else {
                None
            };
            if name.is_none() {
                sink.warning(
                    item.value,
                    format!("{label} has no `id`: it cannot be matched and is never synced"),
                );
            }
            name
        }
    };
    if envelope && id_field.is_none() && item.key.is_some() {
        sink.warning(item.value, format!("{label} has no `id` field"));
    }

    // The version stamp.
    let mut stamped = false;
    if let Some((node, value)) = text("lastUpdated") {
        let valid = match &value {
            Some(s) => stamp_of_digits(s).is_some(),
            None => doc
                .number(node)
                .is_some_and(|v| stamp_of_number(v).is_some()),
        };
        if valid {
            stamped = true;
        } else {
            sink.warning(
                node,
                format!(
                    "{label}: `lastUpdated` is {}, not a YYYYMMDDHHMMSS stamp",
                    quoted(doc, node)
                ),
            );
        }
    }
    let date = text("date").or_else(|| {
        data.and_then(|d| doc.get(d, b"date"))
            .map(|f| (f.value, doc.string(f.value).map(|s| s.into_owned())))
    });
    if let Some((node, value)) = date {
        if value.as_deref().and_then(stamp_of_date).is_some() {
            stamped = true;
        } else {
            sink.warning(
                node,
                format!(
                    "{label}: `date` is {}, not \"YYYY-MM-DD HH:MM:SS\"",
                    quoted(doc, node)
                ),
            );
        }
    }
    if !stamped {
        sink.warning(
            item.value,
            format!(
                "{label} has no valid `lastUpdated` or `date`: a newer copy from another account \
                 cannot be told apart from it"
            ),
        );
    }
    id
}

fn quoted(doc: &Document<'_>, node: Node) -> String {
    let text = String::from_utf8_lossy(doc.text(node.span));
    if text.len() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text.into_owned()
    }
}

/// `sharedDataRemote` is a copy of another account's `sharedData`; a table shaped differently
/// from the account's own (array vs map) is worth a warning.
fn check_target_shape(doc: &Document<'_>, root: Node, sink: &mut Sink) {
    let (Some(own), Some(remote)) = (
        doc.get(root, SHARED_DATA.as_bytes()),
        doc.get(root, SHARED_DATA_REMOTE.as_bytes()),
    ) else {
        return;
    };
    for table in TableName::ALL {
        let (Some(a), Some(b)) = (
            doc.get(own.value, table.as_str().as_bytes()),
            doc.get(remote.value, table.as_str().as_bytes()),
        ) else {
            continue;
        };
        let (sa, sb) = (shape(doc, a.value), shape(doc, b.value));
        if let (Some(sa), Some(sb)) = (sa, sb)
            && sa != sb
        {
            sink.warning(
                b.value,
                format!(
                    "`{SHARED_DATA_REMOTE}.{table}` is {} but `{SHARED_DATA}.{table}` is {}",
                    sb.describe(),
                    sa.describe()
                ),
            );
        }
    }
}

/// The container shape of a non-empty table node.
fn shape(doc: &Document<'_>, node: Node) -> Option<Container> {
    if !matches!(node.kind, Kind::Table { .. }) {
        return None;
    }
    let fields = doc.fields(node);
    let array = fields.iter().any(|f| match f.key {
        FieldKey::Positional => true,
        FieldKey::Bracket(k) => matches!(k.kind, KeyKind::Number { .. }),
        FieldKey::Name(_) => false,
    });
    let keyed = fields.iter().any(|f| match f.key {
        FieldKey::Name(_) => true,
        FieldKey::Bracket(k) => !matches!(k.kind, KeyKind::Number { .. }),
        FieldKey::Positional => false,
    });
    (array || keyed).then_some(Container { array, keyed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::parse;

    /// The findings other than the current-addon layout check (tested on its own below).
    fn issues(src: &str) -> Vec<(Severity, String)> {
        all_issues(src)
            .into_iter()
            .filter(|(_, m)| !m.contains("is in the older layout"))
            .collect()
    }

    fn all_issues(src: &str) -> Vec<(Severity, String)> {
        let doc = parse(src.as_bytes()).unwrap();
        check_guildhelper(&doc)
            .into_iter()
            .map(|i| (i.severity, i.message))
            .collect()
    }

    #[test]
    fn records_the_current_addon_cannot_read_are_flagged_once_per_table() {
        let found = all_issues(
            "GuildHelper_SavedVariables = { sharedData = { \
             news = { { id = '1', date = '2024-12-01 05:09:22' }, { id = '2', date = '2024-12-01 05:09:22' } }, \
             roster = { ['A-B'] = { lastUpdated = '20241231054417', data = {} }, \
                        ['C-D'] = { lastUpdated = '20241231054417' } }, \
             setup = { ['199901010000001234'] = { lastUpdated = '20241231054417', data = { guilds = {} } } } } }",
        );
        let layout: Vec<&String> = found
            .iter()
            .filter(|(s, m)| *s == Severity::Warning && m.contains("is in the older layout"))
            .map(|(_, m)| m)
            .collect();
        assert_eq!(layout.len(), 2, "{found:?}");
        assert!(layout[0].contains("`sharedData.news` is in the older layout (2 records"));
        assert!(layout[0].contains("GuildHelper 1.0.23f cannot read it"));
        assert!(layout[1].contains("`sharedData.roster` is in the older layout (1 record without"));
        // A file in the current layout is not flagged.
        assert!(
            all_issues(
                "GuildHelper_SavedVariables = { sharedData = { news = { ['1'] = { id = '1', \
                 lastUpdated = '20241231054417', data = { title = 't' } } } } }"
            )
            .is_empty()
        );
    }

    #[test]
    fn missing_variable_is_an_error() {
        let found = issues("Other = 1");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Severity::Error);
    }

    #[test]
    fn wrong_shapes_are_reported() {
        let found = issues(
            "GuildHelper_SavedVariables = { sharedData = { roster = 5, news = { 'x', {} } }, \
             sharedDataRemote = true }",
        );
        let severities: Vec<_> = found.iter().map(|f| f.0).collect();
        // In file order: roster, the string in news, the record without id or stamp, the target.
        assert_eq!(
            severities,
            [
                Severity::Error,
                Severity::Warning,
                Severity::Warning,
                Severity::Warning,
                Severity::Error
            ]
        );
        assert!(found[0].1.contains("sharedData.roster"));
        assert!(found[1].1.contains("not a record"));
        assert!(found[2].1.contains("has no `id`"));
        assert!(found[3].1.contains("no valid `lastUpdated`"));
        assert!(found[4].1.contains("sharedDataRemote"));
    }

    #[test]
    fn a_sane_file_has_no_findings() {
        assert!(
            issues(
                "GuildHelper_SavedVariables = { sharedData = { news = { { id = '1', \
                 date = '2024-12-01 05:09:22' } }, roster = { ['A-B'] = { lastUpdated = \
                 '20241231054417' } } } }"
            )
            .is_empty()
        );
    }

    #[test]
    fn holes_duplicates_and_mismatched_ids_are_warnings() {
        let found = issues(
            "GuildHelper_SavedVariables = { sharedData = { calendar = { [1] = { id = 'a', \
             date = '2024-12-01 05:09:22' }, [3] = { id = 'b', date = '2024-12-01 05:09:22' } }, \
             news = { x = { id = 'y', lastUpdated = '20241231054417', data = {} }, \
             { id = 'x', lastUpdated = '20241231054417' } } } }",
        );
        assert!(found.iter().all(|f| f.0 == Severity::Warning), "{found:?}");
        let text: Vec<&str> = found.iter().map(|f| f.1.as_str()).collect();
        assert!(
            text.iter().any(|t| t.contains("[3] follows a hole")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("has the id \"y\"; the key is used")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("has the id \"x\" twice")),
            "{text:?}"
        );
    }

    #[test]
    fn the_target_shaped_unlike_shared_data_is_a_warning() {
        let found = issues(
            "GuildHelper_SavedVariables = { sharedData = { news = { { id = '1', \
             date = '2024-12-01 05:09:22' } } }, sharedDataRemote = { news = { ['1'] = { \
             id = '1', date = '2024-12-01 05:09:22' } } } }",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .1
                .contains("is a map keyed by id but `sharedData.news` is an array")
        );
    }
}
