//! The gateway's write-ahead journal: what it took from the orders ring and what it published
//! into the execs ring, so that a gateway killed at any instruction restarts without losing,
//! repeating or leaving open any order.
//!
//! # Format
//! One append-only file of fixed 80-byte records (all little-endian): a 16-byte header
//! `[kind: u8, 0, 0, 0, checksum: u32, aux: u64]` and a 64-byte payload. The checksum is
//! an FNV-1a-style hash of kind, aux and the payload's 8-byte words (the three pad bytes must be
//! zero). Replay cuts off a short tail (a write torn by the kill: appends are whole records,
//! so a kill can only leave a partial last record) and truncates the file there. A whole
//! record that fails its checksum cannot come from a kill: the journal is refused
//! ([`JournalError::Corrupt`], naming the file, the record's byte offset and how many valid
//! records follow it), never cut there, since that would silently drop every later order and
//! report.
//!
//! | kind | payload | aux |
//! |---|---|---|
//! | 1 `Order` | every [`HedgeOrder`] consumed (new, cancel request, duplicate, invalid) | its position in the orders ring |
//! | 2 `Exec` | the [`ExecEvent`] with its final `exec_id` | 0 |
//! | 3 `Base` | `[exec_id_offset, last_exec_id, orders_next_pos, execs_ring_id, 0...]` as u64 | 0 |
//! | 4 `Open` | an order still open at compaction | its filled quantity (f64 bits) |
//!
//! # Protocol (what makes recovery exact)
//! - An order is journaled (and the write handed to the kernel) **before** its ring slot is
//!   committed, so a committed order is always in the journal; an order journaled but not
//!   committed is recognised on restart by its ring position and bytes, and skipped.
//! - An exec event gets `exec_id = exec_id_offset + execs_ring_position + 1` and is journaled
//!   **before** it is pushed. On restart, journaled execs with an id above
//!   `offset + execs ring position` were not pushed and are pushed again, with the same id; the
//!   others were. So each report reaches the hedger exactly once, with ids that only grow.
//! - Orders with a journaled order and no journaled terminal exec are open; the venue is asked
//!   to recover them, or they end with `Cancelled` + `GatewayRecovery`.
//!
//! `<journal>.lock` is held with an exclusive `flock` while a gateway has the journal open, so
//! two gateways can never write one journal (say, two namespaces given the same state dir).
//!
//! A `write(2)` to a file survives the process being SIGKILLed (the page cache keeps it); the
//! journal is not fsynced, so it shares the durability of the shared-memory segments (a host
//! crash loses both). Keep it in the namespace directory (the default) so they live and die
//! together.

use bytemuck::{bytes_of, pod_read_unaligned};
use shm_layout::{ExecEvent, ExecKind, HedgeOrder, OrderAction, RejectReason};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Size of one record.
pub const RECORD: usize = 80;
const KIND_ORDER: u8 = 1;
const KIND_EXEC: u8 = 2;
const KIND_BASE: u8 = 3;
const KIND_OPEN: u8 = 4;

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// File system error.
    #[error("gateway journal {path}: {source}")]
    Io {
        /// Journal path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A whole record in the journal is corrupt (bad checksum, pad or kind). Nothing is
    /// dropped: the gateway refuses to start.
    #[error("gateway journal {path}: record {index} at byte offset {offset} is corrupt ({why}), {valid_after} valid records follow it; refusing to start rather than drop them: inspect the file, restore it, or truncate it to {offset} bytes to give up that record and all after it")]
    Corrupt {
        /// Journal path.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// Index of the bad record (0-based).
        index: u64,
        /// What is wrong with it.
        why: &'static str,
        /// Records after it whose checksums are valid (what a cut there would lose).
        valid_after: u64,
    },
    /// Another process holds the journal's lock.
    #[error("gateway journal {path} is in use by another order-gateway (its .lock is held): stop it first, or give this one its own --state-dir")]
    InUse {
        /// Journal path.
        path: PathBuf,
    },
}

/// Checksum of a record: FNV-1a-style mixing of 8-byte words (fast; detects torn or
/// corrupted records, not an adversary), folded to 32 bits.
fn checksum(kind: u8, aux: u64, payload: &[u8]) -> u32 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ kind as u64;
    h = (h ^ aux).wrapping_mul(PRIME).rotate_left(29);
    for chunk in payload.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w))
            .wrapping_mul(PRIME)
            .rotate_left(29);
    }
    (h ^ (h >> 32)) as u32
}

/// `(kind, aux)` of a record whose pad bytes are zero and whose checksum matches.
fn check_record(rec: &[u8]) -> Result<(u8, u64), &'static str> {
    let kind = rec[0];
    if rec[1..4] != [0, 0, 0] {
        return Err("non-zero pad bytes");
    }
    let sum = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
    let mut aux_b = [0u8; 8];
    aux_b.copy_from_slice(&rec[8..16]);
    let aux = u64::from_le_bytes(aux_b);
    if checksum(kind, aux, &rec[16..]) != sum {
        return Err("checksum mismatch");
    }
    if !(KIND_ORDER..=KIND_OPEN).contains(&kind) {
        return Err("unknown record kind");
    }
    Ok((kind, aux))
}

fn encode(kind: u8, aux: u64, payload: &[u8; 64], out: &mut Vec<u8>) {
    out.push(kind);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&checksum(kind, aux, payload).to_le_bytes());
    out.extend_from_slice(&aux.to_le_bytes());
    out.extend_from_slice(payload);
}

fn payload_of<T: bytemuck::Pod>(v: &T) -> [u8; 64] {
    let mut p = [0u8; 64];
    let b = bytes_of(v);
    p[..b.len()].copy_from_slice(b);
    p
}

/// The counters a base record carries (written at each start and at compaction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Base {
    /// `exec_id = exec_id_offset + execs ring position + 1`.
    pub exec_id_offset: u64,
    /// Highest exec id assigned so far.
    pub last_exec_id: u64,
    /// One past the highest orders-ring position journaled.
    pub orders_next_pos: u64,
    /// Identity of the execs ring the ids refer to (its file's inode; 0 = unknown). A
    /// different ring at restart means it was replaced: nothing journaled is pushed again.
    pub execs_ring_id: u64,
}

impl Base {
    fn words(&self) -> [u64; 8] {
        [
            self.exec_id_offset,
            self.last_exec_id,
            self.orders_next_pos,
            self.execs_ring_id,
            0,
            0,
            0,
            0,
        ]
    }
}

/// An order the previous run accepted and had not finished.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenOrder {
    /// The order as consumed.
    pub order: HedgeOrder,
    /// Quantity reported filled so far.
    pub filled_qty: f64,
}

/// What a replay of the journal found.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// `exec_id = exec_id_offset + execs ring position + 1`.
    pub exec_id_offset: u64,
    /// Highest exec id journaled (0 if none).
    pub last_exec_id: u64,
    /// One past the highest orders-ring position journaled (or recorded at compaction).
    pub orders_next_pos: u64,
    /// Execs ring identity of the last base record (0 if none).
    pub execs_ring_id: u64,
    /// Orders without a terminal report, by client order id.
    pub open: HashMap<u64, OpenOrder>,
    /// Orders journaled, by ring position, for positions at or after the last compaction
    /// (used to recognise orders journaled but not committed).
    pub orders_by_pos: HashMap<u64, HedgeOrder>,
    /// Every exec record since the last compaction, in journal (= exec id) order.
    pub execs: Vec<ExecEvent>,
    /// Bytes of a torn tail that were cut off.
    pub truncated_bytes: u64,
    /// Valid records read (0 for a new journal).
    pub records: u64,
}

impl Replay {
    fn apply_exec(&mut self, e: &ExecEvent) {
        // An exec pushed again after a restart is journaled again with the same id: once only.
        if e.exec_id <= self.last_exec_id {
            return;
        }
        self.last_exec_id = e.exec_id;
        // A duplicate-id reject belongs to the second order, not to the open one.
        if e.client_order_id != 0 && e.reject_reason != RejectReason::DuplicateOrder as u8 {
            if let Ok(kind) = e.kind() {
                if kind.is_terminal() {
                    self.open.remove(&e.client_order_id);
                } else if let Some(o) = self.open.get_mut(&e.client_order_id) {
                    if kind == ExecKind::PartialFill {
                        o.filled_qty += e.qty;
                    }
                }
            }
        }
        self.execs.push(*e);
    }
}

/// What [`read_execs`] found past a byte offset of the journal, read without its lock.
#[derive(Debug, Clone, Default)]
pub struct ExecTail {
    /// Exec records in journal order (an exec pushed again after a gateway restart appears
    /// twice with the same id: readers deduplicate by `exec_id`).
    pub execs: Vec<ExecEvent>,
    /// Byte offset one past the last whole, valid record read: the next call starts here.
    pub next_offset: u64,
    /// Identity of the file read (its inode): a different value means the gateway compacted
    /// the journal (renamed a new file over it), so offsets restart at 0.
    pub file_id: u64,
}

/// Reads the exec records of the journal at `path` from byte `offset` on, for a drop-copy
/// reader in another process (the risk bridge). Takes no lock and writes nothing: a record
/// still being written (short or bad checksum) ends the read, and the next call retries it.
/// `offset` must be a record boundary returned by an earlier call on the same `file_id`;
/// pass 0 after a change of `file_id` or when the file is shorter than `offset`.
///
/// # Errors
/// The file cannot be opened or read (a missing journal is an empty tail, not an error).
pub fn read_execs(path: &Path, offset: u64) -> io::Result<ExecTail> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt as _;
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ExecTail::default()),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    let start = if meta.len() < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(start))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let mut tail = ExecTail {
        execs: Vec::new(),
        next_offset: start,
        file_id: meta.ino(),
    };
    for rec in data.chunks_exact(RECORD) {
        let mut aux_b = [0u8; 8];
        aux_b.copy_from_slice(&rec[8..16]);
        let sum = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
        if checksum(rec[0], u64::from_le_bytes(aux_b), &rec[16..]) != sum {
            break;
        }
        if rec[0] == KIND_EXEC {
            tail.execs.push(pod_read_unaligned(&rec[16..]));
        }
        tail.next_offset += RECORD as u64;
    }
    Ok(tail)
}

/// The journal file, open for appending.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// `<journal>.lock`, locked exclusively for the life of this handle (never renamed, unlike
    /// the journal itself at compaction).
    _lock: File,
    buf: Vec<u8>,
    records: u64,
    bytes_written: u64,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` and replays it.
    ///
    /// # Errors
    /// [`JournalError::Io`] if the file cannot be read, truncated or opened.
    pub fn open(path: &Path) -> Result<(Journal, Replay), JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            shm_layout::private::create_dir_all(dir).map_err(io_err)?;
        }
        let lock_path = path.with_extension("lock");
        let lock = shm_layout::private::file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err)?;
        if lock.try_lock().is_err() {
            return Err(JournalError::InUse {
                path: path.to_path_buf(),
            });
        }
        let mut data = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut data).map_err(io_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let (replay, good) = Self::replay(&data);
        if data.len() - good >= RECORD {
            return Err(Self::corrupt(path, &data, good));
        }
        let file = shm_layout::private::file_options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err)?;
        if (good as u64) < data.len() as u64 {
            file.set_len(good as u64).map_err(io_err)?;
        }
        let records = (good / RECORD) as u64;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                _lock: lock,
                buf: Vec::with_capacity(RECORD * 1024),
                records,
                bytes_written: good as u64,
            },
            Replay {
                truncated_bytes: (data.len() - good) as u64,
                records,
                ..replay
            },
        ))
    }

    /// The error for a bad whole record at `off`.
    fn corrupt(path: &Path, data: &[u8], off: usize) -> JournalError {
        let valid_after = data[off + RECORD..]
            .chunks_exact(RECORD)
            .filter(|rec| check_record(rec).is_ok())
            .count() as u64;
        JournalError::Corrupt {
            path: path.to_path_buf(),
            offset: off as u64,
            index: (off / RECORD) as u64,
            why: check_record(&data[off..off + RECORD])
                .err()
                .unwrap_or("unknown record kind"),
            valid_after,
        }
    }

    /// Replays records; returns the state and the length of the valid prefix (a bad whole
    /// record ends it: the caller refuses the journal if one follows the prefix).
    fn replay(data: &[u8]) -> (Replay, usize) {
        let mut r = Replay::default();
        let mut off = 0;
        while off + RECORD <= data.len() {
            let rec = &data[off..off + RECORD];
            let Ok((kind, aux)) = check_record(rec) else {
                break;
            };
            let payload = &rec[16..];
            match kind {
                KIND_ORDER | KIND_OPEN => {
                    let o: HedgeOrder = pod_read_unaligned(payload);
                    let filled_qty = if kind == KIND_OPEN {
                        f64::from_bits(aux)
                    } else {
                        r.orders_next_pos = r.orders_next_pos.max(aux + 1);
                        r.orders_by_pos.insert(aux, o);
                        0.0
                    };
                    // Cancel requests are journaled (for their ring position) but open
                    // nothing; a second order with an open id was rejected as a duplicate.
                    if o.action() != Ok(OrderAction::Cancel) {
                        r.open.entry(o.client_order_id).or_insert(OpenOrder {
                            order: o,
                            filled_qty,
                        });
                    }
                }
                KIND_EXEC => {
                    let e: ExecEvent = pod_read_unaligned(payload);
                    r.apply_exec(&e);
                }
                KIND_BASE => {
                    let w = |i: usize| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&payload[i * 8..i * 8 + 8]);
                        u64::from_le_bytes(b)
                    };
                    r.exec_id_offset = w(0);
                    r.last_exec_id = r.last_exec_id.max(w(1));
                    r.orders_next_pos = r.orders_next_pos.max(w(2));
                    r.execs_ring_id = w(3);
                }
                _ => break,
            }
            off += RECORD;
        }
        (r, off)
    }

    /// Appends an order record (buffered until [`Journal::flush`]).
    #[inline]
    pub fn append_order(&mut self, ring_pos: u64, order: &HedgeOrder) {
        encode(KIND_ORDER, ring_pos, &payload_of(order), &mut self.buf);
    }

    /// Appends an exec record (buffered until [`Journal::flush`]).
    #[inline]
    pub fn append_exec(&mut self, e: &ExecEvent) {
        encode(KIND_EXEC, 0, &payload_of(e), &mut self.buf);
    }

    /// Appends a base record (buffered until [`Journal::flush`]).
    pub fn append_base(&mut self, base: &Base) {
        encode(KIND_BASE, 0, &payload_of(&base.words()), &mut self.buf);
    }

    /// Hands buffered records to the kernel in one `write(2)`. Call before committing the
    /// orders consumed or pushing the execs journaled.
    ///
    /// # Errors
    /// [`JournalError::Io`]; the gateway must then stop (it cannot keep its guarantees).
    #[inline]
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.records += (self.buf.len() / RECORD) as u64;
        self.bytes_written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Records in the file.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes in the file.
    pub fn bytes(&self) -> u64 {
        self.bytes_written
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file by a snapshot: a base record and the open orders. Written to a
    /// temporary file and renamed over the journal, so a kill at any point leaves either the
    /// old or the new file. Call only when every journaled exec has been pushed.
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn compact<'a>(
        &mut self,
        base: &Base,
        open: impl Iterator<Item = &'a OpenOrder>,
    ) -> Result<(), JournalError> {
        self.flush()?;
        let io_err = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut buf = Vec::with_capacity(RECORD * 64);
        encode(KIND_BASE, 0, &payload_of(&base.words()), &mut buf);
        for o in open {
            encode(
                KIND_OPEN,
                o.filled_qty.to_bits(),
                &payload_of(&o.order),
                &mut buf,
            );
        }
        let tmp = self.path.with_extension("compact");
        {
            let mut f = shm_layout::private::create_file(&tmp).map_err(io_err)?;
            f.write_all(&buf).map_err(io_err)?;
        }
        fs::rename(&tmp, &self.path).map_err(io_err)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err)?;
        self.records = (buf.len() / RECORD) as u64;
        self.bytes_written = buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    /// A journal path in a fresh directory (removed with the returned guard).
    fn temp_journal() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        (dir, p)
    }

    fn order(id: u64) -> HedgeOrder {
        HedgeOrder {
            client_order_id: id,
            qty: 1.0,
            ..HedgeOrder::zeroed()
        }
    }

    /// Writes orders 1..=`n` (ids from 1, order ids from 0) to a new journal at `p` and
    /// closes it.
    fn write_orders(p: &Path, n: u64) {
        let (mut j, _) = Journal::open(p).unwrap();
        for i in 0..n {
            j.append_order(i, &order(i + 1));
        }
        j.flush().unwrap();
    }

    fn exec(id: u64, coid: u64, kind: ExecKind, qty: f64) -> ExecEvent {
        ExecEvent {
            exec_id: id,
            client_order_id: coid,
            kind: kind as u8,
            qty,
            ..ExecEvent::zeroed()
        }
    }

    #[test]
    fn replay_finds_open_orders_and_last_exec() {
        let (_dir, p) = temp_journal();
        {
            let (mut j, r) = Journal::open(&p).unwrap();
            assert!(r.open.is_empty() && r.last_exec_id == 0);
            j.append_order(0, &order(1));
            j.append_order(1, &order(2));
            j.append_exec(&exec(1, 1, ExecKind::Fill, 1.0));
            j.append_exec(&exec(2, 2, ExecKind::PartialFill, 0.4));
            j.append_exec(&exec(3, 0, ExecKind::OptionTrade, 3.0));
            j.flush().unwrap();
        }
        let (_, r) = Journal::open(&p).unwrap();
        assert_eq!(r.last_exec_id, 3);
        assert_eq!(r.orders_next_pos, 2);
        assert_eq!(r.open.len(), 1);
        assert!((r.open[&2].filled_qty - 0.4).abs() < 1e-12);
        assert_eq!(r.execs.len(), 3);
    }

    #[test]
    fn read_execs_tails_without_the_lock_and_stops_at_a_torn_record() {
        let (_dir, p) = temp_journal();
        assert!(read_execs(&p, 0).unwrap().execs.is_empty());
        let (mut j, _) = Journal::open(&p).unwrap();
        j.append_order(0, &order(1));
        j.append_exec(&exec(1, 1, ExecKind::Fill, 1.0));
        j.flush().unwrap();
        let first = read_execs(&p, 0).unwrap();
        assert_eq!(first.execs.len(), 1);
        assert_eq!(first.next_offset, 2 * RECORD as u64);
        j.append_exec(&exec(2, 0, ExecKind::OptionTrade, 3.0));
        j.flush().unwrap();
        // A torn record (half written) after it: read up to it, not past it.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&[KIND_EXEC; RECORD / 2])
            .unwrap();
        let second = read_execs(&p, first.next_offset).unwrap();
        assert_eq!(second.execs.len(), 1);
        assert_eq!(second.execs[0].exec_id, 2);
        assert_eq!(second.next_offset, 3 * RECORD as u64);
        assert_eq!(second.file_id, first.file_id);
    }

    #[test]
    fn journal_lock_and_directories_are_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("state").join("j");
        let (mut j, _) = Journal::open(&p).unwrap();
        j.append_order(0, &order(1));
        j.flush().unwrap();
        assert_eq!(mode(&root.path().join("state")), 0o700);
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&p.with_extension("lock")), 0o600);
        j.compact(&Base::default(), std::iter::empty()).unwrap();
        assert_eq!(mode(&p), 0o600, "the compacted journal replaces the file");
    }

    #[test]
    fn a_second_handle_on_the_same_journal_is_refused() {
        let (_dir, p) = temp_journal();
        let (j, _) = Journal::open(&p).unwrap();
        assert!(matches!(Journal::open(&p), Err(JournalError::InUse { .. })));
        drop(j);
        assert!(Journal::open(&p).is_ok());
    }

    #[test]
    fn torn_tail_is_cut_off() {
        let (_dir, p) = temp_journal();
        write_orders(&p, 2);
        let mut bytes = fs::read(&p).unwrap();
        bytes.truncate(RECORD + 30);
        fs::write(&p, &bytes).unwrap();
        let (mut j, r) = Journal::open(&p).unwrap();
        assert_eq!(r.truncated_bytes, 30);
        assert_eq!(r.open.len(), 1);
        j.append_order(1, &order(3));
        j.flush().unwrap();
        drop(j);
        let (_, r) = Journal::open(&p).unwrap();
        assert_eq!(r.open.len(), 2);
        assert!(r.open.contains_key(&3));
    }

    #[test]
    fn a_corrupt_record_mid_journal_is_refused_naming_file_and_offset() {
        let (_dir, p) = temp_journal();
        write_orders(&p, 5);
        let good = fs::read(&p).unwrap();
        for (at, why) in [
            (2 * RECORD + 20, "checksum mismatch"),
            (2 * RECORD + 1, "non-zero pad bytes"),
            (4 * RECORD + 5, "checksum mismatch"), // the last record: not a torn write either
        ] {
            let mut bytes = good.clone();
            bytes[at] ^= 1;
            fs::write(&p, &bytes).unwrap();
            let e = Journal::open(&p)
                .err()
                .expect("a corrupt record is refused");
            let rec = (at / RECORD * RECORD) as u64;
            assert!(
                matches!(&e, JournalError::Corrupt { offset, why: w, .. } if *offset == rec && *w == why),
                "{e}"
            );
            let msg = e.to_string();
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("byte offset {rec}")), "{msg}");
            assert_eq!(fs::read(&p).unwrap(), bytes, "nothing is cut off");
        }
        let mut bytes = good.clone();
        bytes[RECORD + 30] ^= 1;
        fs::write(&p, &bytes).unwrap();
        assert!(Journal::open(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("3 valid records follow it"));
    }

    #[test]
    fn compaction_keeps_open_orders_and_ids() {
        let (_dir, p) = temp_journal();
        let (mut j, _) = Journal::open(&p).unwrap();
        for i in 0..100 {
            j.append_order(i, &order(i + 1));
            j.append_exec(&exec(i + 1, i + 1, ExecKind::Cancelled, 0.0));
        }
        j.append_order(100, &order(101));
        j.flush().unwrap();
        let open = [OpenOrder {
            order: order(101),
            filled_qty: 0.5,
        }];
        let base = Base {
            exec_id_offset: 7,
            last_exec_id: 100,
            orders_next_pos: 101,
            execs_ring_id: 42,
        };
        j.compact(&base, open.iter()).unwrap();
        assert_eq!(j.records(), 2);
        j.append_exec(&exec(101, 101, ExecKind::PartialFill, 0.25));
        j.flush().unwrap();
        drop(j);
        let (_, r) = Journal::open(&p).unwrap();
        assert_eq!(r.exec_id_offset, 7);
        assert_eq!(r.last_exec_id, 101);
        assert_eq!(r.orders_next_pos, 101);
        assert_eq!(r.execs_ring_id, 42);
        assert!((r.open[&101].filled_qty - 0.75).abs() < 1e-12);
    }
}
