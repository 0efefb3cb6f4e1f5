//! The one-shot sync between two accounts on one PC (`svsync merge`): a sender peer and a
//! receiver peer, each with its own driver and state, over a link in memory (faulty with
//! `--simulate`).

use std::path::{Path, PathBuf};

use crate::failure::Failure;
use crate::fsio::accounts::Account;
use crate::fsio::write::real_path;
use crate::merge::Counts;
use crate::model::Target;
use crate::model::tables::TableName;
use crate::protocol::receiver::Endpoint;
use crate::protocol::sender::{Outcome, SendFailure, Source};
use crate::protocol::session::PeerInfo;
use crate::protocol::wire::SessionId;
use crate::protocol::{Millis, Timing, in_game_seconds};
use crate::state::{FileStore, MemStore, Store};
use crate::transport::Transport;
use crate::transport::sim::{Rng, SimLink, Simulation};
use crate::transport::testing::CrashAfter;

use super::log::{Log, WireLog};
use super::receiver::{FileAccount, ReceiverDriver, WriteMode};
use super::sender::{Progress, SenderDriver};
use super::{Delivery, Driver, deliver, run};

/// Everything one `merge` needs.
pub struct PairJob {
    pub from: Account,
    pub to: Account,
    pub target: Target,
    pub mode: WriteMode,
    /// Write a read-only file, or over an existing `--output` file.
    pub force: bool,
    pub simulation: Simulation,
    /// Where the peers keep their state; none: in memory (a dry run).
    pub state_dir: Option<PathBuf>,
    /// Where `sender.log` and `receiver.log` go; none: no logs.
    pub log_dir: Option<PathBuf>,
    /// Every message as it crossed the link.
    pub wire_log: Option<PathBuf>,
    pub progress: Option<Progress>,
    /// How long to keep asking a receiver that is busy with another sender (a sync in another
    /// process usually ends within seconds). Zero: report busy at once.
    pub busy_patience: std::time::Duration,
}

/// How a one-shot sync ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PairOutcome {
    Complete,
    Busy { with: String },
    Failed(SendFailure),
}

/// One table of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct TableReport {
    pub table: TableName,
    /// The receiver's counts, when it confirmed the table.
    pub counts: Option<Counts>,
    pub chunks: u32,
    pub bytes: u64,
}

/// The result of one `merge`.
#[derive(Debug, Clone, PartialEq)]
pub struct PairReport {
    pub session: SessionId,
    pub resumed: bool,
    pub outcome: PairOutcome,
    pub tables: Vec<TableReport>,
    pub written: Option<PathBuf>,
    pub backup: Option<PathBuf>,
    /// Whether the merge changes the receiver (for a dry run: would change).
    pub changes: bool,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub bytes_sent: u64,
    /// Damaged or cut messages dropped on the way (simulated faults).
    pub dropped: u64,
    /// How long the sender's messages would take in game.
    pub in_game_seconds: f64,
    /// Time on the link (simulated).
    pub link_seconds: f64,
    /// Session records that were damaged and moved aside.
    pub damaged: Vec<PathBuf>,
    /// Per table, records of TO that repeated an id: one copy of each id was kept.
    pub duplicates: Vec<(TableName, u32)>,
}

impl PairReport {
    pub fn is_complete(&self) -> bool {
        self.outcome == PairOutcome::Complete
    }

    /// Why the sync did not complete, as a failure.
    pub fn failure(&self) -> Option<Failure> {
        match &self.outcome {
            PairOutcome::Complete => None,
            PairOutcome::Busy { with } => Some(Failure::Busy { with: with.clone() }),
            PairOutcome::Failed(f) => Some(Failure::Send(f.clone())),
        }
    }
}

/// The transport address of an account on this PC: its file's canonical path.
pub fn local_addr(file: &Path) -> String {
    let real = real_path(file).unwrap_or_else(|_| file.to_path_buf());
    format!("local:{}", real.display())
}

/// One end of a local sync, as the peers record it.
pub fn local_peer(account: &Account) -> PeerInfo {
    let real = real_path(&account.file).unwrap_or_else(|_| account.file.clone());
    PeerInfo {
        addr: local_addr(&account.file),
        account: account.name.clone(),
        toon: String::new(),
        file: real.display().to_string(),
    }
}

/// Refuses what a merge must never do: FROM and TO the same file; an `--output` onto an
/// account's own file, or over any existing file without `--force`.
pub fn check_job(
    from: &Account,
    to: &Account,
    mode: &WriteMode,
    force: bool,
) -> Result<(), Failure> {
    let real = |p: &Path| real_path(p).unwrap_or_else(|_| p.to_path_buf());
    let (a, b) = (real(&from.file), real(&to.file));
    if a == b {
        return Err(Failure::SameFile(to.file.clone()));
    }
    if let WriteMode::Output(out) = mode {
        let o = real(out);
        if o == a || o == b {
            return Err(Failure::OutputIsAccount {
                path: out.clone(),
                which: if o == a { "FROM" } else { "TO" },
            });
        }
        if out.exists() && !force {
            return Err(Failure::OutputExists(out.clone()));
        }
    }
    Ok(())
}

/// A session id to propose: random for a real run, from the seed for a simulated one (so a
/// schedule is reproducible).
fn proposed_id(simulation: &Simulation, now: Millis) -> SessionId {
    let salt = if simulated(simulation) {
        simulation.faults.seed.rotate_left(17)
    } else {
        u64::from(std::process::id())
            ^ u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos()),
            )
            ^ now
    };
    let mut rng = Rng::new(salt);
    loop {
        let id = rng.next_u64() as u32;
        if id != 0 {
            return SessionId(id);
        }
    }
}

/// Runs one sync of FROM's `sharedData` into TO's target table.
pub fn run_pair(job: PairJob) -> Result<PairReport, Failure> {
    check_job(&job.from, &job.to, &job.mode, job.force)?;
    let source = super::source::read_source(&job.from.file, &job.from.name)?;
    run_pair_with(job, source)
}

/// Runs one sync of `source` (FROM's data, already read) into TO's target table.
pub fn run_pair_with(mut job: PairJob, source: Source) -> Result<PairReport, Failure> {
    let start = std::time::Instant::now();
    let simulated = simulated(&job.simulation);
    loop {
        let report = run_once(&mut job, source.clone())?;
        let busy = matches!(report.outcome, PairOutcome::Busy { .. });
        if !busy || simulated || start.elapsed() >= job.busy_patience {
            return Ok(report);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Messages a local pair's link holds at most of a large flight: the sender makes the next
/// ones when the receiver has taken these (about 300 KB).
const PIECE: usize = 1024;

/// Whether the run simulates faults or a crash (else: two peers in this process).
fn simulated(simulation: &Simulation) -> bool {
    simulation.faults.is_faulty() || simulation.crash_after.is_some()
}

fn run_once(job: &mut PairJob, source: Source) -> Result<PairReport, Failure> {
    let now = crate::time::now_ms();
    let mut link = SimLink::new(now, job.simulation.faults);
    if !simulated(&job.simulation) {
        // In one process a message is handed over as it is made.
        link = link.with_latency(0);
    }
    match job.state_dir.clone() {
        Some(dir) => {
            let stores = (FileStore::new(&dir), FileStore::new(&dir));
            match job.simulation.crash_after {
                Some(n) => sync_pair(job, source, stores, CrashAfter::new(link, n)),
                None => sync_pair(job, source, stores, link),
            }
        }
        None => sync_pair(job, source, (MemStore::new(), MemStore::new()), link),
    }
}

fn sync_pair<S: Store, T: Transport>(
    job: &mut PairJob,
    source: Source,
    (sender_store, receiver_store): (S, S),
    mut link: T,
) -> Result<PairReport, Failure> {
    let log_dir = job.log_dir.as_deref();
    let mut wire = WireLog::create(job.wire_log.as_deref())?;
    let me = local_peer(&job.from);
    let them = local_peer(&job.to);
    let account = FileAccount::new(&job.to.file, job.mode.clone(), job.force);
    let mut receiver = ReceiverDriver::new(
        Endpoint {
            info: them.clone(),
            target: job.target,
        },
        account,
        receiver_store,
        Log::open(log_dir, "receiver.log")?,
    )?;
    let persist = job.state_dir.is_some().then_some(sender_store);
    let mut sender = SenderDriver::new(
        source,
        proposed_id(&job.simulation, link.now()),
        Timing::default(),
        me,
        them,
        job.target,
        persist,
        Log::open(log_dir, "sender.log")?,
    );
    if let Some(p) = job.progress.take() {
        sender = sender.with_progress(p);
    }
    if !simulated(&job.simulation) {
        sender = sender.with_pieces(PIECE);
    }
    let started = link.now();
    sender.start(&mut link);
    let stats = {
        let mut drivers: [&mut dyn Driver; 2] = [&mut sender, &mut receiver];
        run(&mut drivers, &mut link, &mut wire, |d| d[0].is_finished()).and_then(|mut stats| {
            // The sender is done: what it sent last still reaches the receiver.
            loop {
                deliver(&mut drivers, &mut link, &mut wire, &mut stats)?;
                if !link.wait(None)? {
                    break;
                }
                if drivers.iter().any(|d| d.dead().is_some()) {
                    break;
                }
            }
            Ok::<Delivery, Failure>(stats)
        })?
    };
    if let Some(f) = receiver.take_dead().or_else(|| sender.take_dead()) {
        return Err(f);
    }
    let committed = receiver.report().committed;
    let peer = sender.peer();
    let outcome = match peer.outcome() {
        // The receiver committed while its last answer was lost: the merge is done.
        _ if committed.is_some_and(|(sid, _)| sid == peer.sid()) => PairOutcome::Complete,
        Some(Outcome::Complete { .. }) => PairOutcome::Complete,
        Some(Outcome::Busy { with }) => PairOutcome::Busy {
            with: with.to_string(),
        },
        Some(Outcome::Failed(f)) => PairOutcome::Failed(f.clone()),
        None => PairOutcome::Failed(SendFailure::NoAnswer { attempts: 0 }),
    };
    let tables = peer
        .tables()
        .map(|(a, counts)| TableReport {
            table: a.table,
            counts,
            chunks: a.total,
            bytes: a.bytes,
        })
        .collect();
    let sent = sender.stats();
    let session = peer.sid();
    let resumed = sender.resumed();
    let link_seconds = link.now().saturating_sub(started) as f64 / 1000.0;
    let report = receiver.into_report();
    // A local failure of the receiver (its file could not be read, parsed or written) is the
    // reason to report, whatever the sender saw.
    if outcome != PairOutcome::Complete
        && let Some(f) = report.failure
    {
        return Err(f);
    }
    Ok(PairReport {
        session,
        resumed,
        outcome,
        tables,
        written: report.written,
        backup: report.backup,
        changes: report.changes,
        messages_sent: sent.messages,
        messages_received: report.messages_sent,
        bytes_sent: sent.bytes,
        dropped: stats.dropped,
        in_game_seconds: in_game_seconds(sent.messages, sent.bytes),
        link_seconds,
        damaged: report.damaged,
        duplicates: report.duplicates,
    })
}
