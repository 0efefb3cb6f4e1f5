//! The peers' logs: `sender.log` and `receiver.log` (a line per step, with time, session, step,
//! table and a summary), and the wire log (every message as it crossed, with its direction).
//!
//! Each line is written with one `write` call on a file opened for appending, so lines of
//! several processes never interleave. Everything that came from a file or a message is escaped
//! ([`crate::text::printable`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::failure::Failure;
use crate::model::tables::TableName;
use crate::protocol::Millis;
use crate::protocol::wire::SessionId;
use crate::text::printable;
use crate::transport::Envelope;

fn open_append(path: &Path) -> Result<File, Failure> {
    let err = |source| Failure::Log {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)
}

/// One line per step.
#[derive(Debug, Default)]
pub struct Log {
    out: Option<File>,
}

impl Log {
    /// The log `name` in `dir`; no folder: no log.
    pub fn open(dir: Option<&Path>, name: &str) -> Result<Log, Failure> {
        Ok(Log {
            out: dir.map(|d| open_append(&d.join(name))).transpose()?,
        })
    }

    pub fn line(
        &mut self,
        now: Millis,
        sid: SessionId,
        step: &str,
        table: Option<TableName>,
        detail: &str,
    ) {
        if let Some(out) = &mut self.out {
            let t = table.map_or("-", TableName::as_str);
            let line = format!(
                "{} {sid} {step} {t} {}\n",
                crate::time::utc_text(now),
                printable(detail)
            );
            let _ = out.write_all(line.as_bytes());
        }
    }
}

/// Every message as it was delivered: one JSON object per line with the time (milliseconds),
/// both ends and the message text (invalid UTF-8 replaced).
#[derive(Debug, Default)]
pub struct WireLog {
    out: Option<(File, PathBuf)>,
}

impl WireLog {
    pub fn create(path: Option<&Path>) -> Result<WireLog, Failure> {
        let Some(path) = path else {
            return Ok(WireLog::default());
        };
        let file = File::create(path).map_err(|source| Failure::Log {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(WireLog {
            out: Some((file, path.to_path_buf())),
        })
    }

    pub fn record(&mut self, now: Millis, env: &Envelope) {
        if let Some((out, _)) = &mut self.out {
            let line = serde_json::json!({
                "t": now,
                "from": &*env.from,
                "to": &*env.to,
                "msg": String::from_utf8_lossy(&env.bytes),
            });
            let _ = writeln!(out, "{line}");
        }
    }
}
