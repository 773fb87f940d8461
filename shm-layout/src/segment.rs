//! Named segments: create, open, validate, and detect stale creators.
//!
//! A segment is a file under a directory (by default `/dev/shm/<namespace>/`, or any directory
//! such as a hugetlbfs mount) mapped with `memmap2::MmapRaw`. It starts with a 128-byte
//! [`SegmentHeader`]; the kind-specific region follows (see `docs/shm-layout.md`).
//!
//! Creation protocol: the creator makes a temporary file with `O_EXCL` and mode 0600, sizes and
//! maps it, writes the header and the kind's initial state, stores the `initialized` word last
//! (Release), then publishes the file under its name with `link(2)` (atomic, fails if the name
//! exists) and removes the temporary name. An opener therefore never sees a half-written segment
//! from this library; it still checks `initialized` (Acquire) for creators written in other
//! languages, waiting up to [`OpenOptions::wait`].
//!
//! Stale creators: the header records the creator's pid and its start time (field 22 of
//! `/proc/<pid>/stat`, so a recycled pid is not mistaken for the creator). Creating a segment
//! whose name exists gives [`SegmentError::InUse`] if that creator is alive, else follows the
//! [`StalePolicy`]; it is never silently reused.

use crate::sync::{Mem, Ordering};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `b"HEDGESHM"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"HEDGESHM");
/// Layout version of this build; bumped on any incompatible change of any header, ring or
/// message layout (see the versioning rules in `docs/shm-layout.md`).
pub const LAYOUT_VERSION: u32 = 2;
/// Value of the `initialized` word once the creator has finished (`b"INIT"` little-endian).
pub const INITIALIZED: u32 = u32::from_le_bytes(*b"INIT");
/// Size of the common header.
pub const HEADER_SIZE: usize = 128;

/// Longest namespace accepted by [`validate_namespace`], bytes.
pub const NAMESPACE_MAX_LEN: usize = 64;

/// A namespace that [`validate_namespace`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("namespace {name:?} is not allowed: {why}; a namespace is 1 to 64 characters from A-Z a-z 0-9 _ - (it names a directory under /dev/shm)")]
pub struct NamespaceError {
    /// The namespace as given.
    pub name: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Checks that `namespace` is `[A-Za-z0-9_-]{1,64}`: one path component that can never be
/// `.`, `..`, empty, absolute or contain `/`, so `/dev/shm/<namespace>` stays under
/// `/dev/shm`. Every binary and hedgectl call this (through [`namespace_dir`]).
///
/// # Errors
/// [`NamespaceError`] naming the namespace and the rule it breaks.
pub fn validate_namespace(namespace: &str) -> Result<(), NamespaceError> {
    let why = if namespace.is_empty() {
        "it is empty"
    } else if namespace.len() > NAMESPACE_MAX_LEN {
        "it is longer than 64 bytes"
    } else if !namespace
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "it contains a character other than A-Z a-z 0-9 _ -"
    } else {
        return Ok(());
    };
    Err(NamespaceError {
        name: namespace.to_string(),
        why,
    })
}

/// Directory of a namespace: `/dev/shm/<namespace>`, once [`validate_namespace`] accepts it.
///
/// # Errors
/// [`NamespaceError`] for a namespace that could leave `/dev/shm` (`..`, `a/b`, ``) or is
/// otherwise not `[A-Za-z0-9_-]{1,64}`.
pub fn namespace_dir(namespace: &str) -> Result<PathBuf, NamespaceError> {
    validate_namespace(namespace)?;
    Ok(Path::new("/dev/shm").join(namespace))
}

#[cfg(test)]
mod namespace_tests {
    use super::*;

    #[test]
    fn namespaces_that_could_leave_dev_shm_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../../tmp/X",
            "a/b",
            "/abs",
            "a b",
            "ns\0",
            "é",
        ] {
            let e = namespace_dir(bad).unwrap_err();
            assert_eq!(e.name, bad);
            assert!(e.to_string().contains("A-Z a-z 0-9 _ -"), "{e}");
        }
        assert!(namespace_dir(&"x".repeat(65)).is_err());
        assert_eq!(
            namespace_dir(&"x".repeat(64)).unwrap(),
            Path::new("/dev/shm").join("x".repeat(64))
        );
        for good in ["hedge", "hedge-demo-42", "A_b-9"] {
            assert_eq!(
                namespace_dir(good).unwrap(),
                Path::new("/dev/shm").join(good)
            );
        }
    }
}

/// Well-known segment names inside a namespace directory.
pub mod names {
    /// Market-data broadcast ring (written by the feed handler).
    pub const MD: &str = "md";
    /// Last-value table (written by the feed handler).
    pub const LVT: &str = "lvt";
    /// Instrument definitions (written by the feed handler at startup).
    pub const INSTRUMENTS: &str = "instruments";
    /// Orders SPSC queue (hedger -> gateway).
    pub const ORDERS: &str = "orders";
    /// Execs SPSC queue (gateway -> hedger).
    pub const EXECS: &str = "execs";
    /// Operator control block (created by the hedger, written by hedgectl).
    pub const CONTROL: &str = "control";
    /// Prefix of counters segments.
    pub const COUNTERS_PREFIX: &str = "cnc-";
    /// Name of the counters segment of `role`: `"cnc-<role>"`.
    pub fn counters(role: &str) -> String {
        format!("{COUNTERS_PREFIX}{role}")
    }
}

/// What a creator does when it finds a segment of the same name whose creator is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalePolicy {
    /// Return [`SegmentError::Stale`].
    Fail,
    /// Adopt the contents (a restarted owner); the header must match this build exactly.
    Recover,
    /// Delete it and create a fresh one.
    Replace,
}

/// Options for opening an existing segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// How long to wait for a segment that is missing or not yet initialized (default 0).
    pub wait: Duration,
}

impl OpenOptions {
    /// Wait up to `wait` for the segment to appear and be initialized.
    pub fn wait(wait: Duration) -> Self {
        OpenOptions { wait }
    }
}

/// Why a segment could not be created or opened. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// No file of that name.
    #[error("segment {} does not exist: start the process that creates it first, or check the namespace/directory", path.display())]
    Missing {
        /// Segment path.
        path: PathBuf,
    },
    /// The file exists but its creator has not written the `initialized` word (yet), or it is
    /// shorter than a header.
    #[error("segment {} exists but is not initialized: {}", path.display(), not_initialized_why(*creator_pid))]
    NotInitialized {
        /// Segment path.
        path: PathBuf,
        /// Creator pid recorded in the header (0: none, e.g. a zeroed or short file).
        creator_pid: u32,
    },
    /// The name is not a regular file owned by this user with mode 0600 (a FIFO, directory,
    /// symbolic link, device, another user's file, or a file others may read or write).
    /// Opened with `O_NONBLOCK | O_NOFOLLOW`, so a FIFO or a link never blocks or redirects.
    #[error("segment {} {detail}: refusing to use it; remove it and let its creator recreate it", path.display())]
    Unsafe {
        /// Segment path.
        path: PathBuf,
        /// What it is, e.g. `is a FIFO` or `has mode 0666 (others may read or write it; a segment is 0600)`.
        detail: String,
    },
    /// The file is not a segment of this project.
    #[error("{} is not a hedge-engine segment (magic {found:#018x}, expected {expected:#018x}): wrong directory or foreign file; remove it", path.display())]
    BadMagic {
        /// Segment path.
        path: PathBuf,
        /// Magic found.
        found: u64,
        /// Magic expected.
        expected: u64,
    },
    /// Different layout version.
    #[error("segment {} has layout version {found}, this build expects {expected}: run every process from the same build, or stop its creator and recreate it", path.display())]
    VersionMismatch {
        /// Segment path.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version of this build.
        expected: u32,
    },
    /// Same version but different message layouts.
    #[error("segment {} has message-layout fingerprint {found:#018x}, this build has {expected:#018x}: the processes were built from different message definitions; rebuild them from one commit", path.display())]
    FingerprintMismatch {
        /// Segment path.
        path: PathBuf,
        /// Fingerprint found.
        found: u64,
        /// Fingerprint of this build.
        expected: u64,
    },
    /// Another kind of segment (or another message type) lives under that name.
    #[error("segment {} is a {found}, expected a {expected}: wrong name, or a different program uses this namespace", path.display())]
    WrongKind {
        /// Segment path.
        path: PathBuf,
        /// Kind found, e.g. `broadcast<HedgeOrder>`.
        found: String,
        /// Kind expected.
        expected: String,
    },
    /// Sizes disagree (file length, capacity or message size).
    #[error("segment {} has the wrong size: {detail}; remove it and let its creator recreate it", path.display())]
    SizeMismatch {
        /// Segment path.
        path: PathBuf,
        /// What disagrees.
        detail: String,
    },
    /// The creator is dead and the policy is [`StalePolicy::Fail`].
    #[error("segment {} {}: create it with StalePolicy::Recover (keep its contents) or Replace, or remove the file", path.display(), stale_why(*pid))]
    Stale {
        /// Segment path.
        path: PathBuf,
        /// Dead creator's pid.
        pid: u32,
    },
    /// A live process owns the segment (or the consumer end of a queue).
    #[error("segment {} is in use by live process {pid}: stop that process first, or use another namespace", path.display())]
    InUse {
        /// Segment path.
        path: PathBuf,
        /// Live owner's pid.
        pid: u32,
    },
    /// The segment's positions are inconsistent (for example a queue's consumer ahead of its
    /// producer).
    #[error("segment {} is corrupt: {detail}; stop its users and recreate it (StalePolicy::Replace)", path.display())]
    Corrupt {
        /// Segment path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An operating-system error.
    #[error("segment {}: {source}", path.display())]
    Io {
        /// Segment path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn not_initialized_why(creator_pid: u32) -> String {
    if creator_pid != 0 && pid_alive(creator_pid, 0) {
        format!("its creator (pid {creator_pid}) is still starting: open it with a longer wait")
    } else {
        format!(
            "no live process is creating it (creator pid {creator_pid}): a creator that died half-way, or a file this engine did not make; remove it"
        )
    }
}

fn stale_why(pid: u32) -> String {
    if pid == 0 {
        "names no creator process (a file left half-made, or not made by this engine)".into()
    } else {
        format!("was created by process {pid}, which is no longer running")
    }
}

impl SegmentError {
    fn io(path: &Path, source: io::Error) -> Self {
        SegmentError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Declares an enum carried in a `u32` header word from one list (value and lower-case name
/// of each variant): the enum, `from_u32` (the checked decoding, `None` for 0 or an unknown
/// value) and `name`, so that the three cannot disagree.
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Decodes the word (`None` for 0 or an unknown value).
            pub fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// Lower-case name.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }
    };
}
pub(crate) use word_enum;

word_enum! {
    /// Segment kinds (header `kind` word).
    pub enum SegmentKind {
        /// Broadcast ring.
        Broadcast = 1 => "broadcast",
        /// Last-value table.
        LastValue = 2 => "last-value table",
        /// Instrument definitions.
        Instruments = 3 => "instruments table",
        /// SPSC queue.
        Spsc = 4 => "spsc",
        /// Counters (CnC).
        Counters = 5 => "counters",
        /// Control block.
        Control = 6 => "control block",
        /// One cache line for latency probes (`bench`).
        Probe = 7 => "probe line",
    }
}

/// Byte offsets of the common header fields (all little-endian).
pub mod header {
    /// u64: [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// u32: [`super::LAYOUT_VERSION`].
    pub const LAYOUT_VERSION: usize = 8;
    /// u32: [`super::SegmentKind`].
    pub const KIND: usize = 12;
    /// u64: fingerprint of the message layouts.
    pub const FINGERPRINT: usize = 16;
    /// u64: capacity (slots, entries, counters).
    pub const CAPACITY: usize = 24;
    /// u32: size of one message/entry.
    pub const MSG_SIZE: usize = 32;
    /// u32: alignment of one message/entry.
    pub const MSG_ALIGN: usize = 36;
    /// u64: total file size.
    pub const TOTAL_SIZE: usize = 40;
    /// u32 (atomic): creator (owner) pid.
    pub const CREATOR_PID: usize = 48;
    /// u32 (atomic): [`super::INITIALIZED`] once ready; written last with Release.
    pub const INITIALIZED: usize = 52;
    /// u64 (atomic): creator start time, clock ticks since boot (/proc/pid/stat field 22).
    pub const CREATOR_START_TICKS: usize = 56;
    /// u64: creation time, ns since the Unix epoch.
    pub const CREATED_WALL_NS: usize = 64;
    /// u64 (atomic): owner heartbeat, CLOCK_MONOTONIC ns.
    pub const HEARTBEAT_NS: usize = 72;
    /// [u8; 32]: NUL-padded message type name, e.g. `MarketEvent`.
    pub const MSG_TYPE: usize = 80;
    /// Length of the message type name field.
    pub const MSG_TYPE_LEN: usize = 32;
}

/// FNV-1a 64 of every message layout (names, sizes, alignments, field names and offsets).
pub fn layout_fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for l in crate::messages::LAYOUTS {
        eat(l.name.as_bytes());
        eat(&[0]);
        eat(&(l.size as u64).to_le_bytes());
        eat(&(l.align as u64).to_le_bytes());
        for (f, off) in l.fields {
            eat(f.as_bytes());
            eat(&[0]);
            eat(&(*off as u64).to_le_bytes());
        }
    }
    h
}

/// What a segment must look like.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    pub kind: SegmentKind,
    pub msg_type: &'static str,
    pub msg_size: u32,
    pub msg_align: u32,
    /// Total size for a capacity.
    pub size_for: fn(u64, u32) -> Option<usize>,
}

impl Spec {
    /// The spec of a segment of `T` records (type named by its short name, size and alignment
    /// those of `T`).
    pub(crate) fn of<T>(kind: SegmentKind, size_for: fn(u64, u32) -> Option<usize>) -> Spec {
        Spec {
            kind,
            msg_type: short_type_name::<T>(),
            msg_size: core::mem::size_of::<T>() as u32,
            msg_align: core::mem::align_of::<T>() as u32,
            size_for,
        }
    }

    fn describe(&self) -> String {
        format!("{}<{}>", self.kind.name(), self.msg_type)
    }
}

/// Bytes of a segment holding `cap` records of `stride` bytes after its first `offset` bytes;
/// `None` on overflow. The `size_for` of the tables.
pub(crate) fn records_size(cap: u64, stride: usize, offset: usize) -> Option<usize> {
    usize::try_from(cap)
        .ok()?
        .checked_mul(stride)?
        .checked_add(offset)
}

/// [`records_size`] for a segment of exactly `CAP` records after `OFFSET` bytes: `None` for
/// any other capacity, because its readers index records `0..CAP` (a smaller segment, written
/// by another implementation, must be refused at open). The `size_for` of the counters segment
/// and the control block.
pub(crate) fn fixed_records_size<const CAP: usize, const OFFSET: usize>(
    cap: u64,
    msg_size: u32,
) -> Option<usize> {
    if cap != CAP as u64 {
        return None;
    }
    records_size(cap, msg_size as usize, OFFSET)
}

/// [`records_size`] for a ring: `None` also unless `cap` is a power of two (the rings index
/// slots by masking).
pub(crate) fn ring_size(cap: u64, stride: usize, offset: usize) -> Option<usize> {
    if !cap.is_power_of_two() {
        return None;
    }
    records_size(cap, stride, offset)
}

/// Creates the ring segment `dir/name` of `T` messages with `capacity_pow2` slots, for its
/// single writer (broadcast writer or SPSC producer); the region is left zeroed, or as the
/// dead writer left it when `stale` recovers it.
pub(crate) fn create_ring<T: bytemuck::Pod>(
    dir: &Path,
    name: &str,
    spec: &Spec,
    capacity_pow2: usize,
    stale: StalePolicy,
) -> Result<Segment, SegmentError> {
    #[allow(clippy::let_unit_value)]
    let () = crate::sync::WordSized::<T>::OK;
    let (seg, _recovered) = create(dir, name, spec, capacity_pow2 as u64, stale, &|_| {})?;
    Ok(seg)
}

/// Short name of a type (`shm_layout::messages::MarketEvent` -> `MarketEvent`).
pub(crate) fn short_type_name<T>() -> &'static str {
    let full = core::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base);
    if short.len() > header::MSG_TYPE_LEN {
        &short[..header::MSG_TYPE_LEN]
    } else {
        short
    }
}

/// An open mapping of a validated segment.
pub(crate) struct Segment {
    pub mem: Mem,
    pub path: PathBuf,
    pub capacity: u64,
}

impl Segment {
    fn u64(&self, off: usize) -> u64 {
        // SAFETY: header offsets are 8-aligned and inside the 128-byte header, and every segment
        // is at least HEADER_SIZE long (checked before a Segment is built).
        unsafe { self.mem.u64_at(off) }.load(Ordering::Relaxed)
    }
    /// Creator (owner) pid.
    pub fn creator_pid(&self) -> u32 {
        // SAFETY: in the header, 4-aligned.
        unsafe { self.mem.u32_at(header::CREATOR_PID) }.load(Ordering::Relaxed)
    }
    /// Owner heartbeat, monotonic ns.
    pub fn heartbeat_ns(&self) -> u64 {
        self.u64(header::HEARTBEAT_NS)
    }
    /// Stores `now_ns()` in the heartbeat word (Relaxed: informational, no data depends on it).
    pub fn heartbeat(&self) {
        // SAFETY: in the header, 8-aligned; only called on writable mappings.
        unsafe { self.mem.u64_at(header::HEARTBEAT_NS) }
            .store(crate::clock::now_ns(), Ordering::Relaxed);
    }
    /// Whether the creator process is alive.
    pub fn creator_alive(&self) -> bool {
        pid_alive(self.creator_pid(), self.u64(header::CREATOR_START_TICKS))
    }
}

/// The start time of `pid` in clock ticks since boot, and whether it is a zombie.
pub(crate) fn process_start(pid: u32) -> Option<(u64, bool)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    let mut it = rest.split_whitespace();
    let state = it.next()?;
    let start = it.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

/// This process's pid and start ticks.
pub(crate) fn my_identity() -> (u32, u64) {
    let pid = std::process::id();
    (pid, process_start(pid).map(|s| s.0).unwrap_or(0))
}

/// Whether process `pid` is running and (if `start_ticks != 0`) started at `start_ticks`.
pub(crate) fn pid_alive(pid: u32, start_ticks: u64) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    match process_start(pid) {
        Some((_, true)) => false,
        Some((s, false)) => start_ticks == 0 || s == start_ticks,
        None => true,
    }
}

/// The effective user id of this process.
fn my_uid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Refuses anything but a regular file owned by this user that no one else may access.
fn check_file(path: &Path, meta: &fs::Metadata) -> Result<(), SegmentError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let t = meta.file_type();
    let what = if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("is a FIFO, not a regular file".to_string())
    } else if t.is_dir() {
        Some("is a directory, not a regular file".to_string())
    } else if t.is_socket() {
        Some("is a socket, not a regular file".to_string())
    } else if t.is_char_device() || t.is_block_device() {
        Some("is a device, not a regular file".to_string())
    } else {
        Some("is not a regular file".to_string())
    };
    let what = what.or_else(|| {
        (meta.uid() != my_uid()).then(|| {
            format!(
                "is owned by uid {}, not by this user (uid {})",
                meta.uid(),
                my_uid()
            )
        })
    });
    let what = what.or_else(|| {
        let mode = meta.mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!("has mode {mode:04o}: other users may read or write it (a segment is 0600)")
        })
    });
    match what {
        None => Ok(()),
        Some(detail) => Err(SegmentError::Unsafe {
            path: path.to_path_buf(),
            detail,
        }),
    }
}

/// Opens `path` without following a final symbolic link and without blocking (a FIFO would
/// block `open(2)` until a writer came), then checks what it is with `fstat(2)`.
fn open_checked(path: &Path, writable: bool) -> Result<fs::File, SegmentError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            let unsafe_file = |detail: &str| SegmentError::Unsafe {
                path: path.to_path_buf(),
                detail: detail.into(),
            };
            match e.raw_os_error() {
                _ if e.kind() == io::ErrorKind::NotFound => SegmentError::Missing {
                    path: path.to_path_buf(),
                },
                Some(libc::ELOOP) => unsafe_file("is a symbolic link (never followed)"),
                Some(libc::EISDIR) => unsafe_file("is a directory, not a regular file"),
                Some(libc::ENXIO) => unsafe_file("is a FIFO or socket, not a regular file"),
                _ => SegmentError::io(path, e),
            }
        })?;
    let meta = file.metadata().map_err(|e| SegmentError::io(path, e))?;
    check_file(path, &meta)?;
    Ok(file)
}

fn map_file(path: &Path, writable: bool) -> Result<(Mem, usize), SegmentError> {
    let file = open_checked(path, writable)?;
    let len = file
        .metadata()
        .map_err(|e| SegmentError::io(path, e))?
        .len() as usize;
    if len < HEADER_SIZE {
        return Err(SegmentError::NotInitialized {
            path: path.to_path_buf(),
            creator_pid: 0,
        });
    }
    let map = if writable {
        memmap2::MmapOptions::new().map_raw(&file)
    } else {
        memmap2::MmapOptions::new().map_raw_read_only(&file)
    }
    .map_err(|e| SegmentError::io(path, e))?;
    Ok((Mem::new(map), len))
}

/// The error for a mapped header whose `initialized` word is not set, with its creator pid.
fn not_initialized(mem: &Mem, path: &Path) -> SegmentError {
    SegmentError::NotInitialized {
        path: path.to_path_buf(),
        // SAFETY: inside the header, 4-aligned; the caller checked len >= HEADER_SIZE.
        creator_pid: unsafe { mem.u32_at(header::CREATOR_PID) }.load(Ordering::Relaxed),
    }
}

/// Validates the header of a mapped file against `spec`. `Ok(capacity)`.
fn validate(mem: &Mem, len: usize, path: &Path, spec: &Spec) -> Result<u64, SegmentError> {
    let p = || path.to_path_buf();
    // SYNC POINT: this Acquire pairs with the creator's Release store of INITIALIZED, so every
    // header field and the initial state written before it are visible below.
    // SAFETY: all header accesses here: offsets inside the header, aligned, len >= HEADER_SIZE.
    let init = unsafe { mem.u32_at(header::INITIALIZED) }.load(Ordering::Acquire);
    // SAFETY: see above.
    let magic = unsafe { mem.u64_at(header::MAGIC) }.load(Ordering::Relaxed);
    if magic != MAGIC && (magic != 0 || init == INITIALIZED) {
        return Err(SegmentError::BadMagic {
            path: p(),
            found: magic,
            expected: MAGIC,
        });
    }
    if init != INITIALIZED {
        return Err(not_initialized(mem, path));
    }
    // SAFETY: see above.
    let rd32 = |off| unsafe { mem.u32_at(off) }.load(Ordering::Relaxed);
    // SAFETY: see above.
    let rd64 = |off| unsafe { mem.u64_at(off) }.load(Ordering::Relaxed);
    let version = rd32(header::LAYOUT_VERSION);
    if version != LAYOUT_VERSION {
        return Err(SegmentError::VersionMismatch {
            path: p(),
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let fp = rd64(header::FINGERPRINT);
    if fp != layout_fingerprint() {
        return Err(SegmentError::FingerprintMismatch {
            path: p(),
            found: fp,
            expected: layout_fingerprint(),
        });
    }
    let kind = rd32(header::KIND);
    let mut ty = [0u8; header::MSG_TYPE_LEN];
    for (i, b) in ty.iter_mut().enumerate() {
        // SAFETY: inside the header.
        *b = (rd64(header::MSG_TYPE + (i & !7)) >> (8 * (i & 7))) as u8;
    }
    let ty_end = ty.iter().position(|&b| b == 0).unwrap_or(ty.len());
    let ty = String::from_utf8_lossy(&ty[..ty_end]).into_owned();
    if kind != spec.kind as u32 || ty != spec.msg_type {
        let k =
            SegmentKind::from_u32(kind).map_or_else(|| format!("kind {kind}"), |k| k.name().into());
        return Err(SegmentError::WrongKind {
            path: p(),
            found: format!("{k}<{ty}>"),
            expected: spec.describe(),
        });
    }
    let msg_size = rd32(header::MSG_SIZE);
    let msg_align = rd32(header::MSG_ALIGN);
    if msg_size != spec.msg_size || msg_align != spec.msg_align {
        return Err(SegmentError::SizeMismatch {
            path: p(),
            detail: format!(
                "message size/align {msg_size}/{msg_align}, this build has {}/{}",
                spec.msg_size, spec.msg_align
            ),
        });
    }
    let cap = rd64(header::CAPACITY);
    let total = rd64(header::TOTAL_SIZE);
    match (spec.size_for)(cap, msg_size) {
        Some(expect) if expect as u64 == total && expect == len => Ok(cap),
        expect => Err(SegmentError::SizeMismatch {
            path: p(),
            detail: format!(
                "capacity {cap} needs {expect:?} bytes, header says {total}, file has {len}"
            ),
        }),
    }
}

/// Opens and validates an existing segment, waiting up to `opts.wait` for it to appear.
pub(crate) fn open(
    dir: &Path,
    name: &str,
    spec: &Spec,
    opts: OpenOptions,
    writable: bool,
) -> Result<Segment, SegmentError> {
    let path = dir.join(name);
    let deadline = Instant::now() + opts.wait;
    loop {
        let r = map_file(&path, writable)
            .and_then(|(mem, len)| validate(&mem, len, &path, spec).map(|cap| (mem, cap)));
        match r {
            Ok((mem, capacity)) => {
                return Ok(Segment {
                    mem,
                    path,
                    capacity,
                })
            }
            Err(SegmentError::Missing { .. } | SegmentError::NotInitialized { .. })
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates a segment of `capacity`, or handles an existing one per `stale`.
///
/// `init` writes the kind's initial state into the fresh (zeroed) mapping before the
/// `initialized` word is stored. Returns the segment and whether it was recovered.
pub(crate) fn create(
    dir: &Path,
    name: &str,
    spec: &Spec,
    capacity: u64,
    stale: StalePolicy,
    init: &dyn Fn(&Mem),
) -> Result<(Segment, bool), SegmentError> {
    let path = dir.join(name);
    let total =
        (spec.size_for)(capacity, spec.msg_size).ok_or_else(|| SegmentError::SizeMismatch {
            path: path.clone(),
            detail: format!("capacity {capacity} is not valid for a {}", spec.describe()),
        })?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| SegmentError::io(dir, e))?;
    let (my_pid, my_start) = my_identity();
    for _attempt in 0..4 {
        // 1. An existing segment: owner alive -> InUse; dead -> policy.
        match fs::symlink_metadata(&path) {
            Ok(_) => {
                if let Some(seg) = handle_existing(&path, spec, capacity, stale, my_pid, my_start)?
                {
                    return Ok((seg, true));
                }
                // Replaced: removed; fall through to create.
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SegmentError::io(&path, e)),
        }
        // 2. Build it under a temporary name, then publish it with link(2).
        let tmp = dir.join(format!(".{name}.{my_pid}.{}.tmp", crate::clock::now_ns()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| SegmentError::io(&tmp, e))?;
        let cleanup = |e: SegmentError| {
            let _ = fs::remove_file(&tmp);
            e
        };
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| cleanup(SegmentError::io(&tmp, e)))?;
        file.set_len(total as u64)
            .map_err(|e| cleanup(SegmentError::io(&tmp, e)))?;
        let map = memmap2::MmapOptions::new()
            .map_raw(&file)
            .map_err(|e| cleanup(SegmentError::io(&tmp, e)))?;
        let mem = Mem::new(map);
        write_header(&mem, spec, capacity, total, my_pid, my_start);
        init(&mem);
        // SAFETY: inside the header.
        // SYNC POINT: Release; pairs with the Acquire load of INITIALIZED in `validate`.
        unsafe { mem.u32_at(header::INITIALIZED) }.store(INITIALIZED, Ordering::Release);
        drop(file);
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                return Ok((
                    Segment {
                        mem,
                        path,
                        capacity,
                    },
                    false,
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue, // raced: re-check
            Err(e) => return Err(SegmentError::io(&path, e)),
        }
    }
    Err(kept_reappearing(path))
}

/// Four creation attempts each lost the race for the name (was "in use by live process 0").
fn kept_reappearing(path: PathBuf) -> SegmentError {
    SegmentError::Corrupt {
        path,
        detail: "its name was created anew by another process four times while this one \
                 tried to create it (another instance starting in this namespace?)"
            .into(),
    }
}

fn write_header(mem: &Mem, spec: &Spec, capacity: u64, total: usize, pid: u32, start: u64) {
    // SAFETY: all stores: header offsets, aligned, inside the fresh writable mapping that no
    // other process can see yet.
    unsafe {
        mem.u64_at(header::MAGIC).store(MAGIC, Ordering::Relaxed);
        mem.u32_at(header::LAYOUT_VERSION)
            .store(LAYOUT_VERSION, Ordering::Relaxed);
        mem.u32_at(header::KIND)
            .store(spec.kind as u32, Ordering::Relaxed);
        mem.u64_at(header::FINGERPRINT)
            .store(layout_fingerprint(), Ordering::Relaxed);
        mem.u64_at(header::CAPACITY)
            .store(capacity, Ordering::Relaxed);
        mem.u32_at(header::MSG_SIZE)
            .store(spec.msg_size, Ordering::Relaxed);
        mem.u32_at(header::MSG_ALIGN)
            .store(spec.msg_align, Ordering::Relaxed);
        mem.u64_at(header::TOTAL_SIZE)
            .store(total as u64, Ordering::Relaxed);
        mem.u32_at(header::CREATOR_PID)
            .store(pid, Ordering::Relaxed);
        mem.u64_at(header::CREATOR_START_TICKS)
            .store(start, Ordering::Relaxed);
        mem.u64_at(header::CREATED_WALL_NS)
            .store(crate::clock::wall_ns(), Ordering::Relaxed);
        mem.u64_at(header::HEARTBEAT_NS)
            .store(crate::clock::now_ns(), Ordering::Relaxed);
        for (i, b) in spec.msg_type.bytes().take(header::MSG_TYPE_LEN).enumerate() {
            mem.u8_at(header::MSG_TYPE + i).store(b, Ordering::Relaxed);
        }
    }
}

/// `Ok(Some)` = recovered; `Ok(None)` = removed (Replace); `Err` otherwise.
fn handle_existing(
    path: &Path,
    spec: &Spec,
    capacity: u64,
    stale: StalePolicy,
    my_pid: u32,
    my_start: u64,
) -> Result<Option<Segment>, SegmentError> {
    let mapped = map_file(path, true);
    let (pid, start) = match &mapped {
        // SAFETY: header offsets, aligned, len >= HEADER_SIZE.
        Ok((mem, _)) => unsafe {
            (
                mem.u32_at(header::CREATOR_PID).load(Ordering::Relaxed),
                mem.u64_at(header::CREATOR_START_TICKS)
                    .load(Ordering::Relaxed),
            )
        },
        Err(SegmentError::Missing { .. }) => return Ok(None),
        // Not a private regular file: only an explicit Replace removes it.
        Err(SegmentError::Unsafe { path, detail }) if stale != StalePolicy::Replace => {
            return Err(SegmentError::Unsafe {
                path: path.clone(),
                detail: detail.clone(),
            })
        }
        Err(SegmentError::NotInitialized { .. }) => (0, 0), // shorter than a header: garbage
        Err(SegmentError::Io { source, .. }) => {
            return Err(SegmentError::io(
                path,
                io::Error::new(source.kind(), source.to_string()),
            ))
        }
        Err(_) => (0, 0),
    };
    if pid_alive(pid, start) {
        return Err(SegmentError::InUse {
            path: path.to_path_buf(),
            pid,
        });
    }
    match stale {
        StalePolicy::Fail => Err(SegmentError::Stale {
            path: path.to_path_buf(),
            pid,
        }),
        StalePolicy::Replace => match fs::remove_file(path) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SegmentError::io(path, e)),
        },
        StalePolicy::Recover => {
            let (mem, len) = mapped?;
            let cap = validate(&mem, len, path, spec)?;
            if cap != capacity {
                return Err(SegmentError::SizeMismatch {
                    path: path.to_path_buf(),
                    detail: format!(
                        "existing capacity {cap}, requested {capacity}: use StalePolicy::Replace to resize"
                    ),
                });
            }
            claim_owner(&mem, path, pid, my_pid, my_start)?;
            Ok(Some(Segment {
                mem,
                path: path.to_path_buf(),
                capacity,
            }))
        }
    }
}

/// Makes this process the owner of a segment whose recorded owner `old_pid` is dead.
pub(crate) fn claim_owner(
    mem: &Mem,
    path: &Path,
    old_pid: u32,
    my_pid: u32,
    my_start: u64,
) -> Result<(), SegmentError> {
    // SAFETY: header offsets, aligned, writable mapping.
    let pid_word = unsafe { mem.u32_at(header::CREATOR_PID) };
    // CAS so that two restarted owners racing for one segment cannot both win.
    if let Err(now) =
        pid_word.compare_exchange(old_pid, my_pid, Ordering::AcqRel, Ordering::Acquire)
    {
        return Err(SegmentError::InUse {
            path: path.to_path_buf(),
            pid: now,
        });
    }
    // SAFETY: as above.
    unsafe {
        mem.u64_at(header::CREATOR_START_TICKS)
            .store(my_start, Ordering::Relaxed);
        mem.u64_at(header::HEARTBEAT_NS)
            .store(crate::clock::now_ns(), Ordering::Relaxed);
    }
    Ok(())
}

/// Re-attaches to an existing segment as its owner (the previous owner must be dead or have
/// released it).
pub(crate) fn open_as_owner(
    dir: &Path,
    name: &str,
    spec: &Spec,
    opts: OpenOptions,
) -> Result<Segment, SegmentError> {
    let seg = open(dir, name, spec, opts, true)?;
    let (my_pid, my_start) = my_identity();
    let pid = seg.creator_pid();
    // A live owner, even this very process (a second handle would be a second writer), keeps it.
    if pid_alive(pid, seg.u64(header::CREATOR_START_TICKS)) {
        return Err(SegmentError::InUse {
            path: seg.path.clone(),
            pid,
        });
    }
    claim_owner(&seg.mem, &seg.path, pid, my_pid, my_start)?;
    Ok(seg)
}

/// Gives up ownership (a dropped writer handle), so that the owner can re-attach later.
pub(crate) fn release_owner(seg: &Segment) {
    // SAFETY: header offset, aligned, writable mapping (owners map read-write).
    let w = unsafe { seg.mem.u32_at(header::CREATOR_PID) };
    let _ = w.compare_exchange(std::process::id(), 0, Ordering::AcqRel, Ordering::Relaxed);
}
