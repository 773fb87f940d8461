//! FIX 4.4 initiator session: connect, Logon, heartbeats, sequence numbers, resends, Logout,
//! reconnect with backoff.
//!
//! # Threading and I/O
//! No thread: the gateway loop calls [`Session::poll`] every iteration. The socket is
//! non-blocking; `poll` does one `read` (more while data keeps coming, at most 16) and flushes
//! pending output; orders are written out as soon as they are submitted. The only call that may block is `connect`, bounded by `connect_timeout_ms` and made
//! only while disconnected (when no order can be sent anyway). No allocation happens per
//! message: the receive and send buffers are allocated once in [`Session::new`].
//!
//! # Sequence numbers and resends
//! See [`super::store`] for when numbers are persisted. On a gap in incoming numbers we send
//! one `ResendRequest(expected, 0)` and ignore higher messages until the gap is filled (they
//! come again in the resend), so a burst never triggers a storm of requests. Messages below the
//! expected number are ignored when marked PossDup, and end the session otherwise (the FIX
//! rule: it means the two sides disagree).
//!
//! We keep no store of sent messages: every ResendRequest from the counterparty is answered
//! with one SequenceReset-GapFill over the range (up to this connection's Logon when the gap
//! lies in an earlier connection, since what this connection sent is queued behind the gap; and
//! only the one number when it is a ResendRequest of ours on this connection, which a
//! counterparty such as QuickFIX acts on out of order and then asks for alone). For session
//! messages that is what FIX prescribes. For application messages it is a choice: a NewOrderSingle or cancel for an IOC
//! hedge that reaches the venue seconds late is a different (stale) trade decision, so we never
//! resend one; instead [`SessionEvent::GapFilled`] tells the venue layer which of our numbers
//! the counterparty never processed, and it ends those orders itself (rejected, reason
//! `NotConnected`), so the hedger re-decides with fresh data.

use super::codec::{self, tag, DecodeError, DecodeStats, Message, MsgWriter, MAX_MSG_LEN};
use super::config::FixConfig;
use super::store::{SeqStore, StoreError};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Receive buffer size: many messages per read, one message at most [`MAX_MSG_LEN`].
const RX_CAP: usize = 64 * 1024;
/// Most bytes queued for a slow socket before the session gives up on it.
const TX_CAP: usize = 256 * 1024;

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// No connection; the next attempt is due at `next_attempt_ns`.
    Disconnected {
        /// Monotonic ns of the next connect attempt.
        next_attempt_ns: u64,
    },
    /// Connected, Logon sent, waiting for the counterparty's Logon.
    LogonSent {
        /// Monotonic ns when the Logon went out.
        since_ns: u64,
    },
    /// Logged on: application messages flow.
    Active,
    /// Our Logout went out; waiting for the answer.
    LogoutSent {
        /// Monotonic ns when the Logout went out.
        since_ns: u64,
    },
}

/// What the session tells the venue layer.
#[derive(Debug)]
pub enum SessionEvent<'m, 'a> {
    /// Logon completed.
    LoggedOn,
    /// The connection ended (any reason).
    Disconnected,
    /// An application message (or a session-level Reject 35=3) in sequence.
    App(&'m Message<'a>),
    /// We gap-filled our numbers `begin..=end` in answer to a ResendRequest: the counterparty
    /// never processed those messages and never will.
    GapFilled {
        /// First sequence number gap-filled.
        begin: u64,
        /// Last sequence number gap-filled.
        end: u64,
    },
}

/// Session counters (read off the hot path for stats).
#[derive(Debug, Clone, Default)]
pub struct SessionStats {
    /// Messages received and decoded.
    pub msgs_in: u64,
    /// Messages sent.
    pub msgs_out: u64,
    /// Rejected input by decode error (garbled input is dropped, never fatal).
    pub decode: DecodeStats,
    /// Connect attempts.
    pub connect_attempts: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Logons completed.
    pub logons: u64,
    /// Disconnects (any reason).
    pub disconnects: u64,
    /// ResendRequests we sent.
    pub resend_requests_sent: u64,
    /// ResendRequests the counterparty sent.
    pub resend_requests_received: u64,
    /// SequenceReset-GapFills we sent.
    pub gap_fills_sent: u64,
    /// SequenceResets (gap fill or reset) received.
    pub sequence_resets_received: u64,
    /// Messages ignored as PossDup duplicates below the expected number.
    pub duplicates_ignored: u64,
    /// Messages dropped because they were above the expected number (they are resent).
    pub out_of_order_dropped: u64,
    /// Sessions ended because the counterparty's number was too low without PossDup.
    pub seq_too_low: u64,
    /// Messages with wrong CompIDs.
    pub wrong_comp_id: u64,
    /// TestRequests we sent.
    pub test_requests_sent: u64,
    /// Heartbeats we sent.
    pub heartbeats_sent: u64,
    /// Logouts received.
    pub logouts_received: u64,
    /// Sends refused because the send buffer was full.
    pub send_overflows: u64,
    /// Errors writing the sequence-number file.
    pub store_errors: u64,
}

/// Why a message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The session is not logged on.
    NotConnected,
    /// The message could not be encoded (bad value).
    Encode(codec::EncodeError),
    /// The sequence number could not be persisted: nothing was sent.
    Store,
    /// The socket's send queue is full: nothing was sent.
    Backpressure,
}

/// A FIX 4.4 initiator session. See the [module docs](self).
pub struct Session {
    cfg: FixConfig,
    store: SeqStore,
    stream: Option<TcpStream>,
    state: SessionState,
    rx: Vec<u8>,
    rx_len: usize,
    tx: Vec<u8>,
    tx_off: usize,
    scratch: Vec<u8>,
    hb_ns: u64,
    last_sent_ns: u64,
    last_recv_ns: u64,
    test_req_sent_ns: Option<u64>,
    test_req_id: u64,
    backoff_ns: u64,
    /// Set while a ResendRequest of ours is outstanding: the highest number seen when the gap
    /// was detected.
    resend_until: Option<u64>,
    /// Our MsgSeqNum of this connection's Logon: everything from it on went out on this TCP
    /// connection, in order.
    conn_first_seq: u64,
    /// MsgSeqNums of the ResendRequests we sent on this connection (0 = none): a
    /// counterparty may act on a ResendRequest that arrives above its expected number at
    /// once, out of order, and later ask for that number alone (QuickFIX does).
    our_resend_seqs: [u64; 4],
    last_logout_text: String,
    stats: SessionStats,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cfg", &self.cfg)
            .field("state", &self.state)
            .field("next_out", &self.store.next_out())
            .field("next_in", &self.store.next_in())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Creates a disconnected session (the first connect happens in the first `poll`).
    ///
    /// # Errors
    /// The sequence-number file cannot be opened.
    pub fn new(cfg: FixConfig) -> Result<Self, StoreError> {
        let store = SeqStore::open(
            &cfg.state_dir,
            &cfg.sender_comp_id,
            &cfg.target_comp_id,
            cfg.fsync_seqnums,
        )?;
        Ok(Session {
            hb_ns: u64::from(cfg.heartbeat_interval_s) * 1_000_000_000,
            backoff_ns: cfg.reconnect_min_ms * 1_000_000,
            cfg,
            store,
            stream: None,
            state: SessionState::Disconnected { next_attempt_ns: 0 },
            rx: vec![0; RX_CAP],
            rx_len: 0,
            tx: Vec::with_capacity(TX_CAP),
            tx_off: 0,
            scratch: vec![0; MAX_MSG_LEN],
            last_sent_ns: 0,
            last_recv_ns: 0,
            test_req_sent_ns: None,
            test_req_id: 0,
            resend_until: None,
            conn_first_seq: 0,
            our_resend_seqs: [0; 4],
            last_logout_text: String::with_capacity(256),
            stats: SessionStats::default(),
        })
    }

    /// Current state.
    pub fn state(&self) -> SessionState {
        self.state
    }
    /// Whether application messages can be sent.
    pub fn is_active(&self) -> bool {
        self.state == SessionState::Active
    }
    /// Counters.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }
    /// MsgSeqNum of our next outgoing message.
    pub fn next_out(&self) -> u64 {
        self.store.next_out()
    }
    /// MsgSeqNum expected next from the counterparty.
    pub fn next_in(&self) -> u64 {
        self.store.next_in()
    }
    /// Text of the last Logout received (why the counterparty ended the session).
    pub fn last_logout_text(&self) -> &str {
        &self.last_logout_text
    }
    /// The configuration (credentials redacted in its `Debug`).
    pub fn config(&self) -> &FixConfig {
        &self.cfg
    }

    /// Advances connect/logon, reads and handles every complete message, runs the heartbeat
    /// and timeout timers, and flushes output. `on_event` sees logon, disconnect, gap-fill and
    /// in-sequence application messages.
    pub fn poll(&mut self, now_ns: u64, on_event: &mut dyn FnMut(&mut Session, SessionEvent)) {
        if let SessionState::Disconnected { next_attempt_ns } = self.state {
            if now_ns >= next_attempt_ns {
                self.connect(now_ns);
            }
            return;
        }
        self.read_and_handle(now_ns, on_event);
        if self.stream.is_none() {
            return;
        }
        self.timers(now_ns, on_event);
        self.flush(now_ns, on_event);
    }

    /// Sends a Logout and waits (bounded by `logout_timeout_ms`, polling) for the answer.
    pub fn logout(&mut self, text: &str, on_event: &mut dyn FnMut(&mut Session, SessionEvent)) {
        if self.state != SessionState::Active {
            self.disconnect(shm_layout::clock::now_ns(), on_event);
            return;
        }
        let now = shm_layout::clock::now_ns();
        let _ = self.send_seq(b"5", now, None, |w| {
            if !text.is_empty() {
                w.str(tag::TEXT, text.as_bytes());
            }
        });
        self.state = SessionState::LogoutSent { since_ns: now };
        let deadline = now + self.cfg.logout_timeout_ms * 1_000_000;
        while self.stream.is_some() {
            let t = shm_layout::clock::now_ns();
            if t >= deadline {
                self.disconnect(t, on_event);
                break;
            }
            self.poll(t, on_event);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends an application message built by `body` (fields after the standard header).
    /// Returns its MsgSeqNum.
    ///
    /// # Errors
    /// [`SendError`]; on any error nothing was sent and no number was used.
    pub fn send_app(
        &mut self,
        msg_type: &[u8],
        now_ns: u64,
        body: impl FnOnce(&mut MsgWriter),
    ) -> Result<u64, SendError> {
        if self.state != SessionState::Active {
            return Err(SendError::NotConnected);
        }
        self.send_seq(msg_type, now_ns, None, body)
    }

    /// Encodes with the standard header and sends (an admin message as soon as connected, an
    /// application message through [`Self::send_app`] once active); `fixed_seq` (gap fills)
    /// sends with that number without consuming one.
    fn send_seq(
        &mut self,
        msg_type: &[u8],
        now_ns: u64,
        fixed_seq: Option<u64>,
        body: impl FnOnce(&mut MsgWriter),
    ) -> Result<u64, SendError> {
        if self.stream.is_none() {
            return Err(SendError::NotConnected);
        }
        let seq = fixed_seq.unwrap_or(self.store.next_out());
        let wall = shm_layout::clock::wall_ns();
        let mut w = MsgWriter::new(&mut self.scratch, msg_type);
        w.str(tag::SENDER_COMP_ID, self.cfg.sender_comp_id.as_bytes())
            .str(tag::TARGET_COMP_ID, self.cfg.target_comp_id.as_bytes())
            .u64(tag::MSG_SEQ_NUM, seq)
            .timestamp(tag::SENDING_TIME, wall);
        if fixed_seq.is_some() {
            w.char(tag::POSS_DUP_FLAG, b'Y')
                .timestamp(tag::ORIG_SENDING_TIME, wall);
        }
        body(&mut w);
        let bytes = w.finish().map_err(SendError::Encode)?;
        if self.tx.len() + bytes.len() > TX_CAP {
            self.stats.send_overflows += 1;
            return Err(SendError::Backpressure);
        }
        if fixed_seq.is_none() && self.store.set_next_out(seq + 1).is_err() {
            // Persist before send: a number we could not record is never used.
            self.stats.store_errors += 1;
            return Err(SendError::Store);
        }
        self.tx.extend_from_slice(bytes);
        self.stats.msgs_out += 1;
        self.last_sent_ns = now_ns;
        self.write_now();
        Ok(seq)
    }

    /// One non-blocking write of queued output, so a message leaves when it is sent rather than
    /// at the end of the poll (a process killed in between would otherwise have used a
    /// sequence number the counterparty never sees). Errors are left to `flush` in `poll`.
    fn write_now(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if let Ok(n) = stream.write(&self.tx[self.tx_off..]) {
            self.tx_off += n;
            if self.tx_off == self.tx.len() {
                self.tx.clear();
                self.tx_off = 0;
            }
        }
    }

    fn connect(&mut self, now_ns: u64) {
        self.stats.connect_attempts += 1;
        let timeout = Duration::from_millis(self.cfg.connect_timeout_ms.max(1));
        let addr = (self.cfg.host.as_str(), self.cfg.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next());
        let stream = addr.and_then(|a| TcpStream::connect_timeout(&a, timeout).ok());
        let Some(stream) = stream else {
            self.stats.connect_failures += 1;
            self.schedule_reconnect(now_ns);
            return;
        };
        if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
            self.stats.connect_failures += 1;
            self.schedule_reconnect(now_ns);
            return;
        }
        self.stream = Some(stream);
        self.rx_len = 0;
        self.tx.clear();
        self.tx_off = 0;
        self.resend_until = None;
        self.test_req_sent_ns = None;
        self.last_recv_ns = now_ns;
        if self.cfg.reset_on_logon && self.store.reset(1, 1).is_err() {
            self.stats.store_errors += 1;
        }
        self.conn_first_seq = self.store.next_out();
        self.our_resend_seqs = [0; 4];
        let hb = self.cfg.heartbeat_interval_s;
        let reset = self.cfg.reset_on_logon;
        let user = self.cfg.username.clone();
        let pass = self.cfg.password.clone();
        let r = self.send_seq(b"A", now_ns, None, |w| {
            w.char(tag::ENCRYPT_METHOD, b'0')
                .u64(tag::HEART_BT_INT, u64::from(hb));
            if reset {
                w.char(tag::RESET_SEQ_NUM_FLAG, b'Y');
            }
            if let Some(u) = &user {
                w.str(tag::USERNAME, u.expose().as_bytes());
            }
            if let Some(p) = &pass {
                w.str(tag::PASSWORD, p.expose().as_bytes());
            }
        });
        if r.is_err() {
            self.stream = None;
            self.stats.connect_failures += 1;
            self.schedule_reconnect(now_ns);
            return;
        }
        self.state = SessionState::LogonSent { since_ns: now_ns };
        self.flush(now_ns, &mut |_, _| {});
    }

    fn schedule_reconnect(&mut self, now_ns: u64) {
        self.state = SessionState::Disconnected {
            next_attempt_ns: now_ns + self.backoff_ns,
        };
        self.backoff_ns = (self.backoff_ns * 2).min(self.cfg.reconnect_max_ms * 1_000_000);
    }

    fn disconnect(&mut self, now_ns: u64, on_event: &mut dyn FnMut(&mut Session, SessionEvent)) {
        if self.stream.take().is_some() {
            self.stats.disconnects += 1;
            self.rx_len = 0;
            self.tx.clear();
            self.tx_off = 0;
            self.schedule_reconnect(now_ns);
            on_event(self, SessionEvent::Disconnected);
        }
    }

    /// Writes queued output now (one non-blocking `write`), instead of at the next `poll`;
    /// what the socket does not take stays queued.
    pub fn flush(&mut self, now_ns: u64, on_event: &mut dyn FnMut(&mut Session, SessionEvent)) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        while self.tx_off < self.tx.len() {
            match stream.write(&self.tx[self.tx_off..]) {
                Ok(0) => {
                    self.disconnect(now_ns, on_event);
                    return;
                }
                Ok(n) => self.tx_off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.disconnect(now_ns, on_event);
                    return;
                }
            }
        }
        if self.tx_off == self.tx.len() {
            self.tx.clear();
            self.tx_off = 0;
        } else if self.tx_off > TX_CAP / 2 {
            self.tx.drain(..self.tx_off);
            self.tx_off = 0;
        }
    }

    fn timers(&mut self, now_ns: u64, on_event: &mut dyn FnMut(&mut Session, SessionEvent)) {
        match self.state {
            SessionState::LogonSent { since_ns } => {
                if now_ns.saturating_sub(since_ns) > self.cfg.logon_timeout_ms * 1_000_000 {
                    self.disconnect(now_ns, on_event);
                }
            }
            SessionState::LogoutSent { since_ns } => {
                if now_ns.saturating_sub(since_ns) > self.cfg.logout_timeout_ms * 1_000_000 {
                    self.disconnect(now_ns, on_event);
                }
            }
            SessionState::Active => {
                if now_ns.saturating_sub(self.last_sent_ns) >= self.hb_ns {
                    self.stats.heartbeats_sent += 1;
                    let _ = self.send_seq(b"0", now_ns, None, |_| {});
                }
                let silent = now_ns.saturating_sub(self.last_recv_ns);
                match self.test_req_sent_ns {
                    None if silent >= self.hb_ns + self.hb_ns / 5 => {
                        self.test_req_id += 1;
                        let id = self.test_req_id;
                        self.stats.test_requests_sent += 1;
                        if self
                            .send_seq(b"1", now_ns, None, |w| {
                                w.u64(tag::TEST_REQ_ID, id);
                            })
                            .is_ok()
                        {
                            self.test_req_sent_ns = Some(now_ns);
                        }
                    }
                    Some(t) if now_ns.saturating_sub(t) >= self.hb_ns => {
                        // No answer to our TestRequest within a heartbeat interval: dead peer.
                        self.disconnect(now_ns, on_event);
                    }
                    _ => {}
                }
            }
            SessionState::Disconnected { .. } => {}
        }
    }

    fn read_and_handle(
        &mut self,
        now_ns: u64,
        on_event: &mut dyn FnMut(&mut Session, SessionEvent),
    ) {
        // At most 16 reads (1 MiB) per poll, so a flooding peer cannot hold the gateway loop.
        for _ in 0..16 {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            if self.rx_len == RX_CAP {
                // Cannot happen with MAX_MSG_LEN << RX_CAP and the compaction below.
                self.rx_len = 0;
            }
            let n = match stream.read(&mut self.rx[self.rx_len..]) {
                Ok(0) => {
                    self.disconnect(now_ns, on_event);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.disconnect(now_ns, on_event);
                    return;
                }
            };
            self.rx_len += n;
            self.last_recv_ns = now_ns;
            // Take the buffer out so handlers can borrow `self` mutably (no allocation: an
            // empty Vec is swapped in and the buffer is put back below).
            let rx = std::mem::take(&mut self.rx);
            let mut pos = 0;
            while pos < self.rx_len && self.stream.is_some() {
                let r = codec::decode(&rx[pos..self.rx_len]);
                match r {
                    Ok((msg, used)) => {
                        self.stats.decode.accepted += 1;
                        self.stats.msgs_in += 1;
                        pos += used;
                        self.handle(&msg, now_ns, on_event);
                    }
                    Err(DecodeError::Incomplete) => break,
                    Err(e) => {
                        // Garbled: drop up to the next BeginString. Its number, if it had one,
                        // shows up as a gap and is asked for again.
                        self.stats.decode.rejected[e.index()] += 1;
                        pos += codec::resync_offset(&rx[pos..self.rx_len]);
                    }
                }
            }
            self.rx = rx;
            if self.stream.is_none() {
                return;
            }
            self.rx.copy_within(pos..self.rx_len, 0);
            self.rx_len -= pos;
        }
    }

    fn handle(
        &mut self,
        msg: &Message,
        now_ns: u64,
        on_event: &mut dyn FnMut(&mut Session, SessionEvent),
    ) {
        if msg.get(tag::SENDER_COMP_ID) != Some(self.cfg.target_comp_id.as_bytes())
            || msg.get(tag::TARGET_COMP_ID) != Some(self.cfg.sender_comp_id.as_bytes())
        {
            self.stats.wrong_comp_id += 1;
            let _ = self.send_seq(b"5", now_ns, None, |w| {
                w.str(tag::TEXT, b"CompID problem");
            });
            self.flush(now_ns, on_event);
            self.disconnect(now_ns, on_event);
            return;
        }
        let mt = msg.msg_type();
        let seq = msg.seq_num();
        let expected = self.store.next_in();
        if matches!(self.state, SessionState::LogonSent { .. }) && mt != b"A" {
            if mt == b"5" {
                self.record_logout(msg);
            }
            // The first message must be the Logon answer.
            self.disconnect(now_ns, on_event);
            return;
        }
        // SequenceReset in reset mode ignores MsgSeqNum.
        if mt == b"4" && !msg.flag(tag::GAP_FILL_FLAG) {
            self.stats.sequence_resets_received += 1;
            if let Ok(Some(new)) = msg.get_u64(tag::NEW_SEQ_NO) {
                if new > expected {
                    self.set_next_in(new);
                }
            }
            return;
        }
        if seq > expected {
            self.on_seq_gap(msg, expected, now_ns, on_event);
        } else if seq < expected {
            self.on_seq_too_low(msg, expected, now_ns, on_event);
        } else {
            self.on_in_sequence(msg, now_ns, on_event);
        }
    }

    /// A message above the expected sequence number: Logon, Logout and ResendRequest are
    /// still acted on; anything else is dropped; then a resend of the gap is asked for.
    fn on_seq_gap(
        &mut self,
        msg: &Message,
        expected: u64,
        now_ns: u64,
        on_event: &mut dyn FnMut(&mut Session, SessionEvent),
    ) {
        match msg.msg_type() {
            b"A" => self.on_logon(now_ns, on_event),
            b"5" => {
                self.record_logout(msg);
                self.on_logout(now_ns, on_event);
                return;
            }
            b"2" => self.on_resend_request(msg, now_ns, on_event),
            _ => self.stats.out_of_order_dropped += 1,
        }
        if self.stream.is_some() {
            self.request_resend(expected, msg.seq_num(), now_ns);
        }
    }

    /// A message below the expected sequence number: a possible duplicate is ignored,
    /// anything else is a fatal error (Logout with the reason, then disconnect).
    fn on_seq_too_low(
        &mut self,
        msg: &Message,
        expected: u64,
        now_ns: u64,
        on_event: &mut dyn FnMut(&mut Session, SessionEvent),
    ) {
        if msg.flag(tag::POSS_DUP_FLAG) {
            self.stats.duplicates_ignored += 1;
            return;
        }
        self.stats.seq_too_low += 1;
        let mut text = [0u8; 96];
        let t = too_low_text(expected, msg.seq_num(), &mut text);
        let _ = self.send_seq(b"5", now_ns, None, |w| {
            w.str(tag::TEXT, t);
        });
        self.flush(now_ns, on_event);
        self.disconnect(now_ns, on_event);
    }

    /// A message in sequence: admin messages are handled here, application messages go to
    /// `on_event`; the next expected number is persisted after handling (see `store`).
    fn on_in_sequence(
        &mut self,
        msg: &Message,
        now_ns: u64,
        on_event: &mut dyn FnMut(&mut Session, SessionEvent),
    ) {
        let seq = msg.seq_num();
        if let Some(until) = self.resend_until {
            if seq >= until {
                self.resend_until = None;
            }
        }
        let mut next = seq + 1;
        match msg.msg_type() {
            b"A" => self.on_logon(now_ns, on_event),
            b"0" => self.on_heartbeat(msg),
            b"1" => {
                let id = msg.get(tag::TEST_REQ_ID).unwrap_or(b"0");
                self.stats.heartbeats_sent += 1;
                let _ = self.send_seq(b"0", now_ns, None, |w| {
                    w.str(tag::TEST_REQ_ID, id);
                });
            }
            b"2" => self.on_resend_request(msg, now_ns, on_event),
            b"4" => {
                self.stats.sequence_resets_received += 1;
                if let Ok(Some(new)) = msg.get_u64(tag::NEW_SEQ_NO) {
                    next = next.max(new);
                }
                if let Some(until) = self.resend_until {
                    if next > until {
                        self.resend_until = None;
                    }
                }
            }
            b"5" => {
                self.record_logout(msg);
                self.set_next_in(next);
                self.on_logout(now_ns, on_event);
                return;
            }
            _ => on_event(self, SessionEvent::App(msg)),
        }
        // Persist after handling (see `store`).
        self.set_next_in(next);
    }

    /// A Heartbeat: one that answers our TestRequest clears it.
    fn on_heartbeat(&mut self, msg: &Message) {
        if let Some(id) = msg.get(tag::TEST_REQ_ID) {
            let mut tmp = [0u8; 20];
            if self.test_req_sent_ns.is_some() && id == codec::fmt_u64(self.test_req_id, &mut tmp) {
                self.test_req_sent_ns = None;
            }
        }
    }

    fn set_next_in(&mut self, v: u64) {
        if self.store.set_next_in(v).is_err() {
            self.stats.store_errors += 1;
        }
    }

    fn record_logout(&mut self, msg: &Message) {
        self.stats.logouts_received += 1;
        self.last_logout_text.clear();
        if let Some(t) = msg.get(tag::TEXT) {
            let t = &t[..t.len().min(200)];
            self.last_logout_text.push_str(&String::from_utf8_lossy(t));
        }
    }

    fn on_logon(&mut self, now_ns: u64, on_event: &mut dyn FnMut(&mut Session, SessionEvent)) {
        if self.state == SessionState::Active {
            return;
        }
        self.state = SessionState::Active;
        self.stats.logons += 1;
        self.backoff_ns = self.cfg.reconnect_min_ms * 1_000_000;
        self.last_recv_ns = now_ns;
        on_event(self, SessionEvent::LoggedOn);
    }

    fn on_logout(&mut self, now_ns: u64, on_event: &mut dyn FnMut(&mut Session, SessionEvent)) {
        if self.state == SessionState::Active {
            let _ = self.send_seq(b"5", now_ns, None, |_| {});
            self.flush(now_ns, on_event);
        }
        self.disconnect(now_ns, on_event);
    }

    fn request_resend(&mut self, expected: u64, seen: u64, now_ns: u64) {
        if self.resend_until.is_some() {
            return;
        }
        self.resend_until = Some(seen);
        self.stats.resend_requests_sent += 1;
        if let Ok(seq) = self.send_seq(b"2", now_ns, None, |w| {
            w.u64(tag::BEGIN_SEQ_NO, expected).u64(tag::END_SEQ_NO, 0);
        }) {
            self.our_resend_seqs.rotate_right(1);
            self.our_resend_seqs[0] = seq;
        }
    }

    fn on_resend_request(
        &mut self,
        msg: &Message,
        now_ns: u64,
        on_event: &mut dyn FnMut(&mut Session, SessionEvent),
    ) {
        self.stats.resend_requests_received += 1;
        let next_out = self.store.next_out();
        let begin = match msg.get_u64(tag::BEGIN_SEQ_NO) {
            Ok(Some(b)) if b >= 1 && b < next_out => b,
            _ => return,
        };
        let mut end = match msg.get_u64(tag::END_SEQ_NO) {
            Ok(Some(e)) if e != 0 && e < next_out - 1 => e.max(begin),
            _ => next_out - 1,
        };
        if begin < self.conn_first_seq {
            // The missing numbers were used by an earlier connection (a process killed
            // between persisting a number and writing its message). What this connection
            // sent, from its Logon on, arrived in order and is queued by the counterparty
            // behind the gap: fill only up to it, so those orders are not thrown away. A
            // counterparty that did not queue them asks again, and the next request is
            // filled in full.
            end = end.min(self.conn_first_seq - 1);
        } else if self.our_resend_seqs.contains(&begin) {
            // The gap is one of our own ResendRequests of this connection: the counterparty
            // acted on it out of order (it arrived above its expected number) and now misses
            // just that number. Everything after it went out on this connection, in order,
            // and is queued behind it: fill that one number only, so the orders behind it are
            // not thrown away (an order gap-filled is rejected NotConnected). A counterparty
            // that did not queue them asks again from the next number, filled in full.
            end = begin;
        }
        self.stats.gap_fills_sent += 1;
        let _ = self.send_seq(b"4", now_ns, Some(begin), |w| {
            w.char(tag::GAP_FILL_FLAG, b'Y')
                .u64(tag::NEW_SEQ_NO, end + 1);
        });
        on_event(self, SessionEvent::GapFilled { begin, end });
    }
}

fn too_low_text(expected: u64, got: u64, out: &mut [u8; 96]) -> &[u8] {
    let mut n = 0;
    let mut put = |b: &[u8]| {
        let m = b.len().min(out.len() - n);
        out[n..n + m].copy_from_slice(&b[..m]);
        n += m;
    };
    let mut t = [0u8; 20];
    put(b"MsgSeqNum too low, expecting ");
    put(codec::fmt_u64(expected, &mut t));
    put(b" but received ");
    put(codec::fmt_u64(got, &mut t));
    &out[..n]
}
