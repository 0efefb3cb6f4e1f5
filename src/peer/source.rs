//! What a sender sends: an account's `sharedData`, read once and serialized table by table.

use std::path::Path;

use crate::failure::{DataProblem, Failure};
use crate::lua::{Kind, LuaValue, ParsedFile, Table};
use crate::merge::OpenError;
use crate::model::json::{JsonError, node_to_json_bytes, table_to_json_bytes};
use crate::model::tables::TableName;
use crate::model::{SHARED_DATA, parse_options, shared_node};
use crate::protocol::chunk::Payload;
use crate::protocol::sender::Source;
use crate::protocol::wire::Name;

/// Reads `file` (one open) and makes its `sharedData` ready to send as `account`.
pub fn read_source(file: &Path, account: &str) -> Result<Source, Failure> {
    let bytes = std::fs::read(file).map_err(|source| Failure::Read {
        path: file.to_path_buf(),
        source,
    })?;
    source_of(file, bytes, account)
}

/// The source in these bytes of `file`: each table's payload encoded straight from the
/// syntax tree (the tables are never built as values).
pub fn source_of(file: &Path, bytes: Vec<u8>, account: &str) -> Result<Source, Failure> {
    let parsed = ParsedFile::parse(bytes, &parse_options())
        .map_err(|e| Failure::open(file, OpenError::Parse(e)))?;
    let doc = parsed.doc();
    let shared = shared_node(doc, SHARED_DATA)
        .map_err(|e| Failure::open(file, OpenError::Model(e)))?
        .ok_or_else(|| Failure::Data {
            path: file.to_path_buf(),
            problem: DataProblem::NoSharedData,
        })?;
    let mut encoded = Vec::new();
    for t in TableName::ALL {
        let Some(field) = doc.get(shared, t.as_str().as_bytes()) else {
            continue;
        };
        if !matches!(field.value.kind, Kind::Table { .. }) {
            continue;
        }
        let bytes = node_to_json_bytes(doc, field.value).map_err(|e| unsendable(file, t, &e))?;
        encoded.push((t, bytes));
    }
    let toon = doc
        .get(shared, b"UserStatus")
        .and_then(|f| doc.get(f.value, b"userNameRealm"))
        .and_then(|f| doc.string(f.value))
        .and_then(|s| std::str::from_utf8(&s).ok().and_then(Name::new))
        .unwrap_or_else(|| Name::sanitize(account));
    let metadata = doc
        .get(shared, b"metadata")
        .is_some_and(|f| !matches!(f.value.kind, Kind::Nil));
    // The file and its tree go before the payloads take their shared form (a copy).
    drop(parsed);
    let payloads = encoded
        .into_iter()
        .map(|(t, bytes)| Payload::new(t, bytes))
        .collect();
    Ok(Source {
        toon,
        account: Name::sanitize(account),
        metadata,
        payloads,
    })
}

fn unsendable(file: &Path, table: TableName, e: &JsonError) -> Failure {
    Failure::Data {
        path: file.to_path_buf(),
        problem: DataProblem::Unsendable {
            table,
            reason: e.to_string(),
        },
    }
}

/// The source for a `sharedData` table already in memory.
pub fn source_from_table(file: &Path, shared: &Table, account: &str) -> Result<Source, Failure> {
    let mut payloads = Vec::new();
    for t in TableName::ALL {
        if let Some(table) = shared.get_str(t.as_str()).and_then(LuaValue::as_table) {
            let bytes = table_to_json_bytes(table).map_err(|e| unsendable(file, t, &e))?;
            payloads.push(Payload::new(t, bytes));
        }
    }
    Ok(Source {
        toon: toon_of(shared, account),
        account: Name::sanitize(account),
        metadata: shared.get_str("metadata").is_some(),
        payloads,
    })
}

/// The toon a sender announces itself as: `sharedData.UserStatus.userNameRealm`, else the
/// account's name.
fn toon_of(shared: &Table, account: &str) -> Name {
    shared
        .get_str("UserStatus")
        .and_then(LuaValue::as_table)
        .and_then(|t| t.get_str("userNameRealm"))
        .and_then(LuaValue::as_str)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(Name::new)
        .unwrap_or_else(|| Name::sanitize(account))
}
