//! Feeds the FIX decoder 1,200,000 generated bad messages (mutations of valid ones) and checks
//! that each one is rejected with the expected kind of error, never a panic, and counted.
//!
//! A deterministic generator (xorshift, fixed seed) rather than proptest: a million cases in a
//! couple of seconds, and a failure prints the case number and the bytes to reproduce it.

use order_gateway::fix::codec::{
    self, decode, frame_len, tag, DecodeError, DecodeStats, MsgWriter, MAX_MSG_LEN, SOH,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A valid message with random content: one of a few message types, random ids and numbers.
fn valid_message(rng: &mut Rng, out: &mut Vec<u8>) {
    let mut buf = [0u8; MAX_MSG_LEN];
    let kinds: [&[u8]; 5] = [b"8", b"0", b"1", b"3", b"j"];
    let mt = kinds[rng.below(kinds.len())];
    let mut w = MsgWriter::new(&mut buf, mt);
    w.str(tag::SENDER_COMP_ID, b"EXCH")
        .str(tag::TARGET_COMP_ID, b"HEDGER")
        .u64(tag::MSG_SEQ_NUM, 1 + rng.next() % 1_000_000)
        .timestamp(tag::SENDING_TIME, rng.next() % 4_000_000_000_000_000_000);
    match mt {
        b"8" => {
            w.u64(tag::ORDER_ID, rng.next() % 1_000_000_000)
                .u64(tag::CL_ORD_ID, rng.next())
                .u64(tag::EXEC_ID, rng.next())
                .char(tag::EXEC_TYPE, b"04F8"[rng.below(4)])
                .char(tag::ORD_STATUS, b"0124"[rng.below(4)])
                .str(tag::SYMBOL, b"BTC-PERPETUAL")
                .char(tag::SIDE, b"12"[rng.below(2)])
                .decimal(tag::LEAVES_QTY, (rng.next() % 10_000) as f64)
                .decimal(tag::CUM_QTY, (rng.next() % 10_000) as f64)
                .decimal(tag::AVG_PX, (rng.next() % 10_000_000) as f64 / 100.0)
                .decimal(tag::LAST_QTY, (rng.next() % 10_000) as f64)
                .decimal(tag::LAST_PX, (rng.next() % 10_000_000) as f64 / 100.0);
        }
        b"1" => {
            w.u64(tag::TEST_REQ_ID, rng.next());
        }
        b"3" | b"j" => {
            w.u64(tag::REF_SEQ_NUM, rng.next() % 1000 + 1)
                .str(tag::TEXT, b"rejected: some reason text");
        }
        _ => {}
    }
    out.clear();
    out.extend_from_slice(w.finish().expect("valid message encodes"));
}

/// Re-frames `body_fields` (everything after `9=..|` up to `10=`) with a correct BodyLength and
/// CheckSum, so that a semantic error is the only thing wrong.
fn reframe(body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"8=FIX.4.4\x019=");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(SOH);
    out.extend_from_slice(body);
    let cs = codec::checksum(out);
    out.extend_from_slice(format!("10={cs:03}\x01").as_bytes());
}

fn body_of(msg: &[u8]) -> &[u8] {
    let first_soh = msg.iter().position(|&b| b == SOH).unwrap();
    let second = first_soh + 1 + msg[first_soh + 1..].iter().position(|&b| b == SOH).unwrap();
    &msg[second + 1..msg.len() - 7]
}

const CASES: usize = 1_200_000;

#[test]
fn a_million_mutated_messages_are_all_rejected_and_counted_without_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut stats = DecodeStats::default();
    let mut valid = Vec::with_capacity(MAX_MSG_LEN);
    let mut bad = Vec::with_capacity(MAX_MSG_LEN * 2);
    let mut scratch = Vec::with_capacity(MAX_MSG_LEN * 2);
    let mut per_category = [0u64; 10];
    for case in 0..CASES {
        valid_message(&mut rng, &mut valid);
        // Sanity: the unmutated message decodes.
        if case % 1000 == 0 {
            assert!(decode(&valid).is_ok(), "generator made an invalid message");
        }
        let category = rng.below(10);
        per_category[category] += 1;
        bad.clear();
        // `expect` says what kind of rejection this mutation must produce.
        let expect: fn(&DecodeError) -> bool = match category {
            // One bit flipped anywhere: the checksum (or the structure) must catch it.
            0 => {
                bad.extend_from_slice(&valid);
                let i = rng.below(bad.len());
                bad[i] ^= 1 << rng.below(8);
                |_| true
            }
            // Truncated: a valid prefix is incomplete, never accepted.
            1 => {
                let cut = rng.below(valid.len());
                bad.extend_from_slice(&valid[..cut]);
                |e| *e == DecodeError::Incomplete
            }
            // BodyLength lie (shorter or longer than the truth, same digits count or not).
            2 => {
                let body = body_of(&valid);
                let truth = body.len();
                let lie = loop {
                    let d = rng.below(40) + 1;
                    let l = if rng.below(2) == 0 {
                        truth.saturating_sub(d)
                    } else {
                        truth + d
                    };
                    if l != truth {
                        break l;
                    }
                };
                bad.extend_from_slice(b"8=FIX.4.4\x019=");
                bad.extend_from_slice(lie.to_string().as_bytes());
                bad.push(SOH);
                bad.extend_from_slice(&valid[valid.len() - 7 - truth..]);
                |e| {
                    matches!(
                        e,
                        DecodeError::BadTrailer
                            | DecodeError::BadCheckSumField
                            | DecodeError::Incomplete
                            | DecodeError::BadBodyLength
                    )
                }
            }
            // CheckSum lie.
            3 => {
                bad.extend_from_slice(&valid);
                let n = bad.len();
                let truth = (bad[n - 4] - b'0') as u32 * 100
                    + (bad[n - 3] - b'0') as u32 * 10
                    + (bad[n - 2] - b'0') as u32;
                let lie = (truth + 1 + rng.below(255) as u32) % 256;
                bad[n - 4] = b'0' + (lie / 100) as u8;
                bad[n - 3] = b'0' + (lie / 10 % 10) as u8;
                bad[n - 2] = b'0' + (lie % 10) as u8;
                |e| matches!(e, DecodeError::CheckSumMismatch { .. })
            }
            // Random bytes, sometimes behind a plausible header.
            4 => {
                if rng.below(2) == 0 {
                    bad.extend_from_slice(b"8=FIX.4.4\x019=");
                }
                let n = rng.below(300);
                for _ in 0..n {
                    bad.push(rng.next() as u8);
                }
                |_| true
            }
            // Huge declared length.
            5 => {
                bad.extend_from_slice(b"8=FIX.4.4\x019=");
                let huge = 4097 + rng.next() % 10_000_000_000;
                bad.extend_from_slice(huge.to_string().as_bytes());
                bad.push(SOH);
                bad.extend_from_slice(body_of(&valid));
                |e| matches!(e, DecodeError::BodyTooLong { .. })
            }
            // A required header tag removed, framing recomputed.
            6 => {
                let required = [
                    tag::SENDER_COMP_ID,
                    tag::TARGET_COMP_ID,
                    tag::MSG_SEQ_NUM,
                    tag::SENDING_TIME,
                ];
                let drop = required[rng.below(required.len())];
                let prefix = format!("{drop}=");
                scratch.clear();
                for f in body_of(&valid).split_inclusive(|&b| b == SOH) {
                    if !f.starts_with(prefix.as_bytes()) {
                        scratch.extend_from_slice(f);
                    }
                }
                reframe(&scratch.clone(), &mut bad);
                |e| matches!(e, DecodeError::MissingTag { .. })
            }
            // Non-numeric MsgSeqNum, framing recomputed.
            7 => {
                scratch.clear();
                for f in body_of(&valid).split_inclusive(|&b| b == SOH) {
                    if f.starts_with(b"34=") {
                        let junk = [
                            b"34=12a\x01".as_slice(),
                            b"34=-5\x01",
                            b"34=0\x01",
                            b"34=1.5\x01",
                            b"34=99999999999999999999\x01",
                        ];
                        scratch.extend_from_slice(junk[rng.below(junk.len())]);
                    } else {
                        scratch.extend_from_slice(f);
                    }
                }
                reframe(&scratch.clone(), &mut bad);
                |e| matches!(e, DecodeError::NotNumeric { tag: 34 })
            }
            // A duplicated field, framing recomputed.
            8 => {
                let body = body_of(&valid);
                let fields: Vec<&[u8]> = body.split_inclusive(|&b| b == SOH).collect();
                let dup = fields[1 + rng.below(fields.len() - 1)];
                scratch.clear();
                scratch.extend_from_slice(body);
                scratch.extend_from_slice(dup);
                reframe(&scratch.clone(), &mut bad);
                |e| matches!(e, DecodeError::DuplicateTag { .. })
            }
            // No SOH at all (the common "|" instead of SOH mistake), or SOH removed from the end.
            _ => {
                bad.extend_from_slice(&valid);
                if rng.below(2) == 0 {
                    for b in bad.iter_mut() {
                        if *b == SOH {
                            *b = b'|';
                        }
                    }
                    |e| matches!(e, DecodeError::BadBeginString)
                } else {
                    bad.pop();
                    |e| *e == DecodeError::Incomplete
                }
            }
        };
        let r = decode(&bad);
        stats.record(&r);
        match r {
            Ok((m, _)) => panic!(
                "case {case} category {category}: accepted a bad message {:?}\n{}",
                m,
                String::from_utf8_lossy(&bad).replace('\x01', "|")
            ),
            Err(e) => assert!(
                expect(&e),
                "case {case} category {category}: unexpected {e:?} for {}",
                String::from_utf8_lossy(&bad).replace('\x01', "|")
            ),
        }
        // The streaming framer agrees with the decoder on the frame-level verdict.
        if let Err(e) = frame_len(&bad) {
            assert_eq!(decode(&bad).err(), Some(e));
        }
    }
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.total_rejected(), CASES as u64);
    assert!(
        per_category.iter().all(|&n| n > 100_000),
        "{per_category:?}"
    );
    eprintln!(
        "rejected {} bad messages: {:?}",
        stats.total_rejected(),
        DecodeError::LABELS
            .iter()
            .zip(stats.rejected.iter())
            .filter(|(_, &n)| n > 0)
            .collect::<Vec<_>>()
    );
}

mod round_trip {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever valid fields go in come out: same tags, same values, in order; and the
        /// decimals parse back to the value the encoder rounded to 8 places.
        #[test]
        fn encoded_fields_decode_to_the_same_values(
            seq in 1u64..u64::MAX / 2,
            ts in 0u64..4_102_444_800_000_000_000,
            values in proptest::collection::vec(
                (5000u32..6000, "[ -~]{1,40}"), 0..20),
            px in -1e9f64..1e9,
            qty in 0u64..1_000_000_000,
        ) {
            let mut buf = [0u8; MAX_MSG_LEN];
            let mut w = MsgWriter::new(&mut buf, b"8");
            w.str(tag::SENDER_COMP_ID, b"S")
                .str(tag::TARGET_COMP_ID, b"T")
                .u64(tag::MSG_SEQ_NUM, seq)
                .timestamp(tag::SENDING_TIME, ts)
                .decimal(tag::PRICE, px)
                .u64(tag::ORDER_QTY, qty);
            let mut used = std::collections::HashSet::new();
            let mut expect = Vec::new();
            for (t, v) in &values {
                if used.insert(*t) {
                    w.str(*t, v.as_bytes());
                    expect.push((*t, v.clone()));
                }
            }
            let bytes = w.finish().unwrap().to_vec();
            let (m, n) = decode(&bytes).unwrap();
            prop_assert_eq!(n, bytes.len());
            prop_assert_eq!(m.seq_num(), seq);
            prop_assert_eq!(m.get_u64(tag::ORDER_QTY), Ok(Some(qty)));
            let got_px = m.get_f64(tag::PRICE).unwrap().unwrap();
            prop_assert!((got_px - px).abs() <= 5e-9 + px.abs() * 1e-15, "{} vs {}", got_px, px);
            for (t, v) in &expect {
                prop_assert_eq!(m.get(*t), Some(v.as_bytes()));
            }
            let tags: Vec<u32> = m.fields().map(|(t, _)| t).skip(7).collect();
            let want: Vec<u32> = expect.iter().map(|(t, _)| *t).collect();
            prop_assert_eq!(tags, want);
        }
    }
}
