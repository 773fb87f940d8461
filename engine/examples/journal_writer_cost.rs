//! CPU the session journal's writer thread spends per event, measured on its own: a producer
//! paced at `--rate` events/s records each event as the live loop does (its `PollMd` and,
//! every other event, a second stamp: about 1.5 records, 120 bytes, per event), and the
//! writer thread's on-CPU time is read from `/proc/self/task/<tid>/schedstat` (ns) once it
//! has drained everything. Only the public journal API is used, so the same file builds
//! against an older journal to compare.
//!
//! `cargo run --release -p engine --example journal_writer_cost -- [events] [rate]`
#![forbid(unsafe_code)]

use engine::hedger::journal::{JournalConfig, Record, RecordKind, Recorder};
use shm_layout::clock::now_ns;
use shm_layout::MarketEvent;

/// On-CPU ns of this process's thread named `name` (schedstat's first field).
fn thread_cpu_ns(name: &str) -> Option<u64> {
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let p = t.ok()?.path();
        let comm = std::fs::read_to_string(p.join("comm")).ok()?;
        if comm.trim() == name {
            let s = std::fs::read_to_string(p.join("schedstat")).ok()?;
            return s.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map_or(5_000_000, |a| a.parse().expect("events"));
    let rate: f64 = args.next().map_or(1e6, |a| a.parse().expect("rate"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rec = Recorder::start(&JournalConfig {
        dir: dir.path().join("session"),
        file_max_bytes: 256 << 20,
        files_kept: 2,
        queue_records: 1 << 16,
    })
    .expect("recorder");
    let mut tap = rec.tap();
    let e = MarketEvent::underlying_price(1, 0, 0, 100.0);
    let t0 = now_ns();
    let gap_ns = 1e9 / rate;
    for i in 0..events {
        let due = t0 + (i as f64 * gap_ns) as u64;
        let mut now = now_ns();
        while now < due {
            std::hint::spin_loop();
            now = now_ns();
        }
        tap.begin_poll(now);
        tap.push(Record::with(RecordKind::Md, 0, 0, &e));
        tap.push(Record::new(RecordKind::Stamp, 0, now + 50));
        if i % 2 == 0 {
            tap.push(Record::new(RecordKind::Stamp, 0, now + 90));
        }
    }
    let wall_s = (now_ns() - t0) as f64 / 1e9;
    let dropped = tap.dropped;
    drop(tap); // publishes what is left
    std::thread::sleep(std::time::Duration::from_millis(50));
    let cpu = thread_cpu_ns("hedger-journal").expect("writer thread");
    let written = rec.finish().expect("finish");
    println!(
        "events {events} in {wall_s:.2} s, records written {written}, dropped {dropped}: \
         writer thread {:.1} ms CPU, {:.1} ns/event, {:.1} ns/record",
        cpu as f64 / 1e6,
        cpu as f64 / events as f64,
        cpu as f64 / written.max(1) as f64
    );
}
