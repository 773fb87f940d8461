#!/usr/bin/env python3
"""Read hedge-engine shared-memory segments following docs/shm-layout.md.

Standard library only (mmap, struct, json). Maps each segment read-only and never writes, so it
is safe against live writers: ring slots and last-value entries are read with the seqlock
protocol (load sequence, copy, re-load sequence, retry or skip on mismatch).

Usage:
  shm_reader.py DIR            dump every segment in DIR (e.g. /dev/shm/hedge) as JSON
  shm_reader.py DIR/NAME ...   dump the given segment files

Exit status: 0 on success, 1 if a segment is invalid (message on stderr, dump continues).
"""

import json
import mmap
import os
import struct
import sys

MAGIC = int.from_bytes(b"HEDGESHM", "little")
INITIALIZED = int.from_bytes(b"INIT", "little")
LAYOUT_VERSION = 2
HEADER_SIZE = 128

KINDS = {1: "broadcast", 2: "lvt", 3: "instruments", 4: "spsc", 5: "counters", 6: "control",
         7: "probe"}

# Common header: offsets from docs/shm-layout.md, section "Segment header".
HEADER = struct.Struct("<QIIQQIIQIIQQQ32s16s")
assert HEADER.size == HEADER_SIZE

# Message layouts (little-endian, no implicit padding), docs/shm-layout.md "Messages".
MARKET_EVENT = struct.Struct("<QQQIBBH4d")
HEDGE_ORDER = struct.Struct("<QIBBBBddQQQQ")
EXEC_EVENT = struct.Struct("<QQIBBBBddddQ")
INSTRUMENT_DEF = struct.Struct("<IBBBBIIdQdddd48s16s")
LAST_VALUE = struct.Struct("<QQQII10dII16d16d8s")
assert MARKET_EVENT.size == 64 and HEDGE_ORDER.size == 64 and EXEC_EVENT.size == 64
assert INSTRUMENT_DEF.size == 128 and LAST_VALUE.size == 384

PROCESS_STATES = {1: "starting", 2: "running", 3: "stopping", 4: "stopped"}
TRADING_STATES = {0: "active", 1: "reduce-only", 2: "halted"}


class SegmentInvalid(Exception):
    pass


# Atomic words are read whole (docs/shm-layout.md, "Whole-word loads"): struct's "<Q" builds
# the value byte by byte, so a word changing meanwhile could read half old, half new. A
# native-format memoryview item is copied with one fixed-size memcpy: one aligned load. Native
# order is little-endian on every supported host.
assert sys.byteorder == "little"


def u64(m, off):
    assert off % 8 == 0
    with memoryview(m) as mv, mv[off:off + 8] as b, b.cast("Q") as w:
        return w[0]


def u32(m, off):
    assert off % 4 == 0
    with memoryview(m) as mv, mv[off:off + 4] as b, b.cast("I") as w:
        return w[0]


def decode_market_event(b):
    f = MARKET_EVENT.unpack(b)
    return {"seq": f[0], "exch_ts_ns": f[1], "recv_ts_ns": f[2], "instrument_id": f[3],
            "kind": f[4], "side": f[5], "flags": f[6], "v": list(f[7:11])}


def decode_hedge_order(b):
    f = HEDGE_ORDER.unpack(b)
    keys = ["client_order_id", "instrument_id", "side", "order_type", "tif", "action", "qty",
            "limit_px", "feed_recv_ts_ns", "hedger_read_ts_ns", "decision_ts_ns",
            "publish_ts_ns"]
    return dict(zip(keys, f))


def decode_exec_event(b):
    f = EXEC_EVENT.unpack(b)
    keys = ["exec_id", "client_order_id", "instrument_id", "kind", "side", "liquidity",
            "reject_reason", "qty", "price", "fee", "leaves_qty", "ts_ns"]
    return dict(zip(keys, f))


def decode_instrument_def(b):
    f = INSTRUMENT_DEF.unpack(b)
    keys = ["id", "kind", "option_type", "settlement", "_pad0", "underlying_id", "forward_id",
            "strike", "expiry_ns", "contract_multiplier", "tick_size", "lot_size", "min_qty"]
    d = dict(zip(keys, f[:13]))
    del d["_pad0"]
    d["symbol"] = f[13].split(b"\0", 1)[0].decode("ascii", "replace")
    return d


def decode_last_value(b):
    f = LAST_VALUE.unpack(b)
    keys = ["last_seq", "exch_ts_ns", "recv_ts_ns", "instrument_id", "valid", "bid_px",
            "bid_qty", "ask_px", "ask_qty", "mark_px", "mark_iv", "mark_underlying_px", "price",
            "last_trade_px", "last_trade_qty", "bid_levels", "ask_levels"]
    d = dict(zip(keys, f[:17]))
    d["bid_depth"] = [[f[17 + 2 * i], f[18 + 2 * i]] for i in range(8)]
    d["ask_depth"] = [[f[33 + 2 * i], f[34 + 2 * i]] for i in range(8)]
    return d


DECODERS = {
    "MarketEvent": decode_market_event,
    "HedgeOrder": decode_hedge_order,
    "ExecEvent": decode_exec_event,
    "InstrumentDef": decode_instrument_def,
    "LastValue": decode_last_value,
}


def decode(msg_type, b):
    dec = DECODERS.get(msg_type)
    return dec(b) if dec else {"hex": b.hex()}


def read_header(m, path):
    if len(m) < HEADER_SIZE:
        raise SegmentInvalid(f"{path}: shorter than a header: not initialized")
    # The creator stores `initialized` last (release): read it first.
    init = u32(m, 52)
    h = HEADER.unpack_from(m, 0)
    (magic, version, kind, fingerprint, capacity, msg_size, msg_align, total_size, _pid, _init,
     _start_ticks, created_wall_ns, _heartbeat_ns, msg_type, _reserved) = h
    # Words the owner updates while we read: whole-word loads.
    pid, start_ticks, heartbeat_ns = u32(m, 48), u64(m, 56), u64(m, 72)
    if magic != MAGIC:
        raise SegmentInvalid(f"{path}: bad magic {magic:#018x}")
    if init != INITIALIZED:
        raise SegmentInvalid(f"{path}: not initialized")
    if version != LAYOUT_VERSION:
        raise SegmentInvalid(f"{path}: layout version {version}, this reader knows {LAYOUT_VERSION}")
    if total_size != len(m):
        raise SegmentInvalid(f"{path}: header says {total_size} bytes, file has {len(m)}")
    return {
        "magic": magic, "layout_version": version, "kind": kind, "fingerprint": fingerprint,
        "capacity": capacity, "msg_size": msg_size, "msg_align": msg_align,
        "total_size": total_size, "creator_pid": pid, "initialized": True,
        "creator_start_ticks": start_ticks, "created_wall_ns": created_wall_ns,
        "heartbeat_ns": heartbeat_ns,
        "msg_type": msg_type.split(b"\0", 1)[0].decode("ascii", "replace"),
    }


def round_up(n, to):
    return (n + to - 1) & ~(to - 1)


def dump_broadcast(m, h):
    cap, size = h["capacity"], h["msg_size"]
    stride = round_up(8 + size, 64)
    tail = u64(m, 128)
    out = []
    # Readable window: positions tail+1-cap .. tail-1 (slot of `tail` may be mid-write).
    for pos in range(max(0, tail + 1 - cap), tail):
        slot = 256 + (pos & (cap - 1)) * stride
        want = 2 * pos + 2
        s1 = u64(m, slot)
        if s1 != want:
            continue  # overwritten meanwhile (lapped) or not yet complete
        b = bytes(m[slot + 8: slot + 8 + size])
        if u64(m, slot) != s1:
            continue  # torn: the writer overwrote it while we copied
        out.append({"position": pos, "msg": decode(h["msg_type"], b)})
    return {"tail": tail, "messages": out}


def read_seqlock(m, off, size, attempts=1000):
    for _ in range(attempts):
        s1 = u64(m, off)
        if s1 == 0:
            return None, 0
        if s1 & 1:
            continue
        b = bytes(m[off + 8: off + 8 + size])
        if u64(m, off) == s1:
            return b, s1
    return None, -1


def dump_lvt(m, h):
    size = h["msg_size"]
    stride = round_up(8 + size, 64)
    entries = []
    for i in range(h["capacity"]):
        b, seq = read_seqlock(m, 256 + i * stride, size)
        if b is not None:
            entries.append({"id": i, "seq": seq, "value": decode(h["msg_type"], b)})
    return {"entries": entries}


def dump_instruments(m, h):
    size = h["msg_size"]
    return {"defs": [decode(h["msg_type"], bytes(m[128 + i * size: 128 + (i + 1) * size]))
                     for i in range(h["capacity"])]}


def dump_spsc(m, h):
    cap, size = h["capacity"], h["msg_size"]
    head, tail = u64(m, 128), u64(m, 256)
    msgs = []
    for pos in range(head, tail):
        off = 384 + (pos & (cap - 1)) * size
        msgs.append({"position": pos, "msg": decode(h["msg_type"], bytes(m[off: off + size]))})
    # Re-read head: a message the consumer committed while we copied may have had its slot
    # reused by the producer; only positions still at or above head are certainly intact.
    head2 = u64(m, 128)
    msgs = [x for x in msgs if x["position"] >= head2]
    return {"head": head, "tail": tail, "consumer_pid": u32(m, 136), "messages": msgs}


def dump_counters(m, h):
    state = u32(m, 128)
    n = min(u32(m, 132), h["capacity"])
    counters = []
    def text(len_at, at, cap):
        return bytes(m[at: at + min(u32(m, len_at), cap)]).decode("utf-8", "replace")

    for i in range(n):
        r = 256 + 256 * i
        value, kind = u64(m, r), u32(m, r + 8)
        rec = {"label": text(r + 12, r + 16, 112), "unit": text(r + 128, r + 136, 24),
               "help": text(r + 132, r + 160, 96)}
        if kind == 2:
            rec.update(kind="gauge", value=struct.unpack("<d", struct.pack("<Q", value))[0])
        elif kind == 1:
            rec.update(kind="counter", value=value)
        else:
            # A kind this reader does not know: shown with its raw word, never dropped.
            rec.update(kind=f"unknown({kind})", value=value)
        counters.append(rec)
    return {"state": PROCESS_STATES.get(state, f"unknown({state})"), "counters": counters}


def dump_control(m, h):
    states = {}
    for i in range(h["capacity"]):
        v = m[320 + i]
        if v != 0:
            states[str(i)] = TRADING_STATES.get(v, f"unknown({v})")
    return {"generation": u64(m, 128), "kill_switch": u32(m, 256) != 0, "trading_state": states}


def dump_probe(m, h):
    return {"words": [u64(m, 128 + 8 * i) for i in range(8)]}


DUMPERS = {1: dump_broadcast, 2: dump_lvt, 3: dump_instruments, 4: dump_spsc, 5: dump_counters,
           6: dump_control, 7: dump_probe}


def dump_file(path):
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < HEADER_SIZE:
            raise SegmentInvalid(f"{path}: shorter than a header: not initialized")
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        h = read_header(m, path)
        dumper = DUMPERS.get(h["kind"])
        if dumper is None:
            raise SegmentInvalid(f"{path}: unknown kind {h['kind']}")
        out = {"header": h}
        out.update(dumper(m, h))
        return out
    finally:
        m.close()


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    paths = []
    for a in argv[1:]:
        if os.path.isdir(a):
            paths += [os.path.join(a, n) for n in sorted(os.listdir(a)) if not n.startswith(".")]
        else:
            paths.append(a)
    result, status = {}, 0
    for p in paths:
        try:
            result[os.path.basename(p)] = dump_file(p)
        except (SegmentInvalid, OSError) as e:
            print(f"shm_reader: {e}", file=sys.stderr)
            status = 1
    try:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        print()
    except BrokenPipeError:
        pass
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
