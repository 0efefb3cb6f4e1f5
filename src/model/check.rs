//! Structure checks of a GuildHelper SavedVariables file, with the place of every finding.
//!
//! These run on the syntax tree (not the owned values) so each finding points at a line and
//! column of the player's file.

use crate::lua::{Document, Kind, Node};

use super::{SAVED_VARIABLES, SHARED_DATA, SHARED_DATA_REMOTE, SYNCED_TABLES};

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

struct Sink(Vec<Issue>);

impl Sink {
    fn error(&mut self, at: Node, message: String) {
        self.0.push(Issue {
            offset: at.span.start as usize,
            severity: Severity::Error,
            message,
        });
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
        Kind::Table { .. } | Kind::Skipped => "a table",
    }
}

/// Checks a parsed `GuildHelper.lua`. The document must have been parsed keeping
/// [`super::KEEP_PATHS`] (or everything).
pub fn check_guildhelper(doc: &Document<'_>) -> Vec<Issue> {
    let mut sink = Sink(Vec::new());
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
    for table in SYNCED_TABLES {
        let Some(field) = doc.get(node, table.as_bytes()) else {
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
        for entry in doc.fields(value) {
            if !matches!(entry.value.kind, Kind::Table { .. }) {
                sink.warning(
                    entry.value,
                    format!(
                        "an entry of `{name}.{table}` is {}, not a record; it cannot be synced \
                         and is left as it is",
                        describe(entry.value.kind)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::parse;

    fn issues(src: &str) -> Vec<(Severity, String)> {
        let doc = parse(src.as_bytes()).unwrap();
        check_guildhelper(&doc)
            .into_iter()
            .map(|i| (i.severity, i.message))
            .collect()
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
        assert_eq!(
            severities,
            [Severity::Warning, Severity::Error, Severity::Error]
        );
        assert!(found[0].1.contains("sharedData.news"));
        assert!(found[1].1.contains("sharedData.roster"));
        assert!(found[2].1.contains("sharedDataRemote"));
    }

    #[test]
    fn a_sane_file_has_no_findings() {
        assert!(
            issues("GuildHelper_SavedVariables = { sharedData = { news = { {} } } }").is_empty()
        );
    }
}
