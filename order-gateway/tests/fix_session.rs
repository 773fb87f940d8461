//! The FIX session against a scripted counterparty on loopback: hostile bytes on the wire are
//! dropped and counted (never fatal), a lost message is recovered with exactly one
//! ResendRequest, and a number below the expected one without PossDup ends the session.

use order_gateway::fix::codec::{self, tag, MsgWriter, MAX_MSG_LEN};
use order_gateway::fix::{FixConfig, Session, SessionState};
use shm_layout::clock::now_ns;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn msg(msg_type: &[u8], seq: u64, body: impl FnOnce(&mut MsgWriter)) -> Vec<u8> {
    let mut buf = [0u8; MAX_MSG_LEN];
    let mut w = MsgWriter::new(&mut buf, msg_type);
    w.str(tag::SENDER_COMP_ID, b"EXCH")
        .str(tag::TARGET_COMP_ID, b"HEDGER")
        .u64(tag::MSG_SEQ_NUM, seq)
        .timestamp(tag::SENDING_TIME, shm_layout::clock::wall_ns());
    body(&mut w);
    w.finish().unwrap().to_vec()
}

/// Reads from the peer until a message of `msg_type` arrives; returns its bytes.
fn read_until(s: &mut TcpStream, pending: &mut Vec<u8>, msg_type: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    loop {
        while let Ok((m, used)) = codec::decode(pending) {
            let out = (m.msg_type() == msg_type).then(|| m.bytes().to_vec());
            pending.drain(..used);
            if let Some(out) = out {
                return out;
            }
        }
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).expect("peer read");
        assert!(n > 0, "session closed while waiting for 35={msg_type:?}");
        pending.extend_from_slice(&b[..n]);
    }
}

fn drive(s: &mut Session, until: impl Fn(&Session) -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !until(s) {
        assert!(Instant::now() < end, "timeout: {s:?} {:?}", s.stats());
        s.poll(now_ns(), &mut |_, _| {});
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn garbage_is_counted_and_a_lost_message_is_recovered_with_one_resend_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut pending = Vec::new();
        read_until(&mut s, &mut pending, b"A");
        let mut wire = msg(b"A", 1, |w| {
            w.char(tag::ENCRYPT_METHOD, b'0').u64(tag::HEART_BT_INT, 30);
        });
        wire.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n"); // not FIX at all
        wire.extend_from_slice(&msg(b"0", 2, |_| {}));
        let mut bad = msg(b"0", 3, |_| {});
        let n = bad.len();
        bad[n - 2] = if bad[n - 2] == b'9' {
            b'0'
        } else {
            bad[n - 2] + 1
        }; // checksum lie
        wire.extend_from_slice(&bad);
        wire.extend_from_slice(b"8=FIX.4.4\x019=99999999\x01"); // hostile length
        wire.extend_from_slice(&msg(b"0", 4, |_| {}));
        s.write_all(&wire).unwrap();
        // Seq 3 was garbled: the session must ask for it, once.
        let rr = read_until(&mut s, &mut pending, b"2");
        let (rr, _) = codec::decode(&rr).unwrap();
        assert_eq!(rr.get_u64(tag::BEGIN_SEQ_NO), Ok(Some(3)));
        assert_eq!(rr.get_u64(tag::END_SEQ_NO), Ok(Some(0)));
        // Gap-fill 3..=4 (admin messages are never resent) and carry on with 5.
        let mut wire = msg(b"4", 3, |w| {
            w.char(tag::POSS_DUP_FLAG, b'Y')
                .char(tag::GAP_FILL_FLAG, b'Y')
                .u64(tag::NEW_SEQ_NO, 5);
        });
        wire.extend_from_slice(&msg(b"0", 5, |_| {}));
        // A PossDup duplicate below the expected number is ignored...
        wire.extend_from_slice(&msg(b"0", 2, |w| {
            w.char(tag::POSS_DUP_FLAG, b'Y');
        }));
        s.write_all(&wire).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // ...but one without PossDup ends the session with a Logout.
        s.write_all(&msg(b"0", 3, |_| {})).unwrap();
        let lo = read_until(&mut s, &mut pending, b"5");
        let (lo, _) = codec::decode(&lo).unwrap();
        assert!(lo.get(tag::TEXT).unwrap().starts_with(b"MsgSeqNum too low"));
    });
    let cfg = FixConfig::new("127.0.0.1", port, "HEDGER", "EXCH", dir.path());
    let mut s = Session::new(cfg).unwrap();
    drive(&mut s, |s| s.next_in() == 6);
    assert_eq!(s.state(), SessionState::Active);
    let st = s.stats().clone();
    assert_eq!(st.resend_requests_sent, 1, "{st:?}");
    assert_eq!(st.decode.total_rejected(), 3, "{:?}", st.decode);
    assert_eq!(
        st.decode.rejected[codec::DecodeError::CheckSumMismatch {
            declared: 0,
            computed: 0
        }
        .index()],
        1
    );
    assert_eq!(
        st.decode.rejected[codec::DecodeError::BodyTooLong { declared: 0 }.index()],
        1
    );
    drive(&mut s, |s| s.stats().duplicates_ignored == 1);
    drive(&mut s, |s| !matches!(s.state(), SessionState::Active));
    assert_eq!(s.stats().seq_too_low, 1);
    peer.join().unwrap();
}

/// A counterparty may act at once on a ResendRequest that arrives above its expected number
/// and later ask for that number alone (QuickFIX does). The session then gap-fills just that
/// number: what it sent after it on this connection (orders) is queued by the counterparty
/// and must not be thrown away. Asked again from the next number, it fills in full.
#[test]
fn a_resend_request_for_our_own_resend_request_fills_only_that_number() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (to_peer, peer_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut pending = Vec::new();
        read_until(&mut s, &mut pending, b"A");
        // Our Logon answer is numbered 5: the session expects 1 and asks for 1.. .
        s.write_all(&msg(b"A", 5, |w| {
            w.char(tag::ENCRYPT_METHOD, b'0').u64(tag::HEART_BT_INT, 30);
        }))
        .unwrap();
        let rr = read_until(&mut s, &mut pending, b"2");
        let (rr, _) = codec::decode(&rr).unwrap();
        assert_eq!(rr.get_u64(tag::BEGIN_SEQ_NO), Ok(Some(1)));
        let rr_seq = rr.seq_num();
        // Gap-fill 1..=5 for it, then wait until the session has sent three orders.
        s.write_all(&msg(b"4", 1, |w| {
            w.char(tag::POSS_DUP_FLAG, b'Y')
                .char(tag::GAP_FILL_FLAG, b'Y')
                .u64(tag::NEW_SEQ_NO, 6);
        }))
        .unwrap();
        let mut orders = Vec::new();
        for _ in 0..3 {
            let d = read_until(&mut s, &mut pending, b"D");
            orders.push(codec::decode(&d).unwrap().0.seq_num());
        }
        peer_rx.recv().unwrap();
        // Ask for the ResendRequest's number (as if acted on out of order).
        s.write_all(&msg(b"2", 6, |w| {
            w.u64(tag::BEGIN_SEQ_NO, rr_seq).u64(tag::END_SEQ_NO, 0);
        }))
        .unwrap();
        let gf = read_until(&mut s, &mut pending, b"4");
        let (gf, _) = codec::decode(&gf).unwrap();
        assert_eq!(gf.seq_num(), rr_seq);
        assert_eq!(
            gf.get_u64(tag::NEW_SEQ_NO),
            Ok(Some(rr_seq + 1)),
            "only the ResendRequest's number is filled, not the orders {orders:?}"
        );
        // Asked again from the next number (the orders): filled in full.
        s.write_all(&msg(b"2", 7, |w| {
            w.u64(tag::BEGIN_SEQ_NO, rr_seq + 1).u64(tag::END_SEQ_NO, 0);
        }))
        .unwrap();
        let gf = read_until(&mut s, &mut pending, b"4");
        let (gf, _) = codec::decode(&gf).unwrap();
        assert_eq!(gf.seq_num(), rr_seq + 1);
        assert_eq!(gf.get_u64(tag::NEW_SEQ_NO), Ok(Some(orders[2] + 1)));
        (rr_seq, orders)
    });
    let cfg = FixConfig::new("127.0.0.1", port, "HEDGER", "EXCH", dir.path());
    let mut s = Session::new(cfg).unwrap();
    drive(&mut s, |s| s.is_active() && s.next_in() == 6);
    for _ in 0..3 {
        s.send_app(b"D", now_ns(), |w| {
            w.str(tag::CL_ORD_ID, b"1");
        })
        .unwrap();
    }
    to_peer.send(()).unwrap();
    drive(&mut s, |s| s.stats().gap_fills_sent == 2);
    let (rr_seq, orders) = peer.join().unwrap();
    assert_eq!(orders, [rr_seq + 1, rr_seq + 2, rr_seq + 3]);
}
