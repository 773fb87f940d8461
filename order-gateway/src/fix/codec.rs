//! FIX 4.4 tag=value codec with no allocation per message.
//!
//! Decoding validates the frame first (`8=FIX.4.4`, `9=BodyLength`, `10=CheckSum` at exactly
//! the place BodyLength says, the checksum value) and then indexes the body into a stack array
//! of `(tag, value range)` entries that borrow the input: [`Message`] never copies a value.
//! Every way input can be wrong is a [`DecodeError`] variant, counted by [`DecodeStats`]; no
//! input makes the decoder panic (`tests/fix_codec_fuzz.rs` feeds it millions of mutations).
//!
//! Encoding writes into a caller-provided fixed buffer through [`MsgWriter`]: the body is
//! written first after a reserved gap, then `8=..|9=..|` is placed right before it and
//! `10=..|` after it, so BodyLength and CheckSum are computed without a second buffer.
//!
//! Limits (documented deviations from full FIX): at most [`MAX_FIELDS`] fields, a body of at
//! most [`MAX_BODY_LEN`] bytes, no length-prefixed binary data fields (tags 95/96 and friends),
//! and no repeating groups: a tag that appears twice is rejected ([`DecodeError::DuplicateTag`]).
//! The messages this adapter consumes (session messages, ExecutionReport, OrderCancelReject,
//! Reject, BusinessMessageReject) need none of them.

use core::fmt;

/// The field delimiter (ASCII SOH).
pub const SOH: u8 = 0x01;
/// `8=FIX.4.4<SOH>`: the only BeginString this codec speaks.
pub const BEGIN_STRING: &[u8] = b"8=FIX.4.4\x01";
/// Most fields a decoded message may have (header, body and trailer together).
pub const MAX_FIELDS: usize = 64;
/// Largest BodyLength accepted; anything larger is hostile for this adapter's messages.
pub const MAX_BODY_LEN: usize = 4096;
/// Largest whole message (header + body + trailer) either side handles.
pub const MAX_MSG_LEN: usize = MAX_BODY_LEN + 32;
/// Most BodyLength digits accepted (4096 has 4; 6 allows leading-zero-free values up to 999999
/// to be reported as [`DecodeError::BodyTooLong`] rather than as garbage).
const MAX_LEN_DIGITS: usize = 6;
/// Bytes reserved in front of the body for `8=FIX.4.4|9=NNNNNN|` while encoding.
const HEADER_RESERVE: usize = BEGIN_STRING.len() + 2 + MAX_LEN_DIGITS + 1;

/// Standard tags this adapter reads or writes.
#[allow(missing_docs)]
pub mod tag {
    pub const BEGIN_STRING: u32 = 8;
    pub const BODY_LENGTH: u32 = 9;
    pub const CHECK_SUM: u32 = 10;
    pub const BEGIN_SEQ_NO: u32 = 7;
    pub const END_SEQ_NO: u32 = 16;
    pub const AVG_PX: u32 = 6;
    pub const CL_ORD_ID: u32 = 11;
    pub const COMMISSION: u32 = 12;
    pub const COMM_TYPE: u32 = 13;
    pub const CUM_QTY: u32 = 14;
    pub const EXEC_ID: u32 = 17;
    pub const LAST_PX: u32 = 31;
    pub const LAST_QTY: u32 = 32;
    pub const MSG_SEQ_NUM: u32 = 34;
    pub const MSG_TYPE: u32 = 35;
    pub const NEW_SEQ_NO: u32 = 36;
    pub const ORDER_ID: u32 = 37;
    pub const ORDER_QTY: u32 = 38;
    pub const ORD_STATUS: u32 = 39;
    pub const ORD_TYPE: u32 = 40;
    pub const ORIG_CL_ORD_ID: u32 = 41;
    pub const POSS_DUP_FLAG: u32 = 43;
    pub const PRICE: u32 = 44;
    pub const REF_SEQ_NUM: u32 = 45;
    pub const SENDER_COMP_ID: u32 = 49;
    pub const SENDING_TIME: u32 = 52;
    pub const SIDE: u32 = 54;
    pub const SYMBOL: u32 = 55;
    pub const TARGET_COMP_ID: u32 = 56;
    pub const TEXT: u32 = 58;
    pub const TIME_IN_FORCE: u32 = 59;
    pub const TRANSACT_TIME: u32 = 60;
    pub const ENCRYPT_METHOD: u32 = 98;
    pub const CXL_REJ_REASON: u32 = 102;
    pub const ORD_REJ_REASON: u32 = 103;
    pub const HEART_BT_INT: u32 = 108;
    pub const TEST_REQ_ID: u32 = 112;
    pub const ORIG_SENDING_TIME: u32 = 122;
    pub const GAP_FILL_FLAG: u32 = 123;
    pub const RESET_SEQ_NUM_FLAG: u32 = 141;
    pub const EXEC_TYPE: u32 = 150;
    pub const LEAVES_QTY: u32 = 151;
    pub const REF_TAG_ID: u32 = 371;
    pub const REF_MSG_TYPE: u32 = 372;
    pub const SESSION_REJECT_REASON: u32 = 373;
    pub const BUSINESS_REJECT_REF_ID: u32 = 379;
    pub const BUSINESS_REJECT_REASON: u32 = 380;
    pub const CXL_REJ_RESPONSE_TO: u32 = 434;
    pub const USERNAME: u32 = 553;
    pub const PASSWORD: u32 = 554;
    pub const LAST_LIQUIDITY_IND: u32 = 851;
}

/// Why a byte sequence is not an acceptable FIX 4.4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes so far are a valid prefix but the message is not complete (streaming: read
    /// more; a whole datagram: it was truncated).
    Incomplete,
    /// The message does not start with `8=FIX.4.4<SOH>`.
    BadBeginString,
    /// The second field is not `9=<digits><SOH>`.
    BadBodyLength,
    /// BodyLength is larger than [`MAX_BODY_LEN`].
    BodyTooLong {
        /// The declared length (or its first six digits when it has more).
        declared: u32,
    },
    /// `10=` is not where BodyLength says the body ends (a length lie or a corrupt body).
    BadTrailer,
    /// The CheckSum field is not exactly three digits followed by SOH.
    BadCheckSumField,
    /// The CheckSum value does not match the bytes.
    CheckSumMismatch {
        /// The value the message carries.
        declared: u16,
        /// The value computed over the bytes.
        computed: u8,
    },
    /// A field is not `<tag>=<value><SOH>` (no `=`, a non-numeric or zero-led tag, no SOH).
    MalformedField {
        /// Byte offset of the field within the message.
        offset: u32,
    },
    /// A field has an empty value.
    EmptyValue {
        /// The field's tag.
        tag: u32,
    },
    /// More than [`MAX_FIELDS`] fields.
    TooManyFields,
    /// A tag appears twice (repeating groups are not supported by this adapter).
    DuplicateTag {
        /// The repeated tag.
        tag: u32,
    },
    /// MsgType (35) is not the first field of the body.
    MsgTypeNotFirst,
    /// A required header field is missing.
    MissingTag {
        /// The missing tag.
        tag: u32,
    },
    /// A field that must be numeric is not (or does not fit).
    NotNumeric {
        /// The field's tag.
        tag: u32,
    },
}

impl DecodeError {
    /// Number of variants (size of the [`DecodeStats`] counter array).
    pub const COUNT: usize = 14;

    /// Dense index of the variant, for counting.
    pub const fn index(self) -> usize {
        match self {
            DecodeError::Incomplete => 0,
            DecodeError::BadBeginString => 1,
            DecodeError::BadBodyLength => 2,
            DecodeError::BodyTooLong { .. } => 3,
            DecodeError::BadTrailer => 4,
            DecodeError::BadCheckSumField => 5,
            DecodeError::CheckSumMismatch { .. } => 6,
            DecodeError::MalformedField { .. } => 7,
            DecodeError::EmptyValue { .. } => 8,
            DecodeError::TooManyFields => 9,
            DecodeError::DuplicateTag { .. } => 10,
            DecodeError::MsgTypeNotFirst => 11,
            DecodeError::MissingTag { .. } => 12,
            DecodeError::NotNumeric { .. } => 13,
        }
    }

    /// Counter label of each variant, by [`DecodeError::index`].
    pub const LABELS: [&'static str; Self::COUNT] = [
        "fix_decode_incomplete",
        "fix_decode_bad_begin_string",
        "fix_decode_bad_body_length",
        "fix_decode_body_too_long",
        "fix_decode_bad_trailer",
        "fix_decode_bad_checksum_field",
        "fix_decode_checksum_mismatch",
        "fix_decode_malformed_field",
        "fix_decode_empty_value",
        "fix_decode_too_many_fields",
        "fix_decode_duplicate_tag",
        "fix_decode_msg_type_not_first",
        "fix_decode_missing_tag",
        "fix_decode_not_numeric",
    ];
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Incomplete => f.write_str("incomplete FIX message (truncated)"),
            DecodeError::BadBeginString => f.write_str("message does not start with 8=FIX.4.4"),
            DecodeError::BadBodyLength => {
                f.write_str("second field is not a numeric BodyLength (9)")
            }
            DecodeError::BodyTooLong { declared } => {
                write!(
                    f,
                    "BodyLength {declared} exceeds the limit of {MAX_BODY_LEN}"
                )
            }
            DecodeError::BadTrailer => {
                f.write_str("CheckSum (10) is not where BodyLength says the body ends")
            }
            DecodeError::BadCheckSumField => f.write_str("CheckSum (10) is not three digits"),
            DecodeError::CheckSumMismatch { declared, computed } => {
                write!(f, "CheckSum {declared:03} declared, {computed:03} computed")
            }
            DecodeError::MalformedField { offset } => {
                write!(f, "malformed tag=value field at byte {offset}")
            }
            DecodeError::EmptyValue { tag } => write!(f, "tag {tag} has an empty value"),
            DecodeError::TooManyFields => write!(f, "more than {MAX_FIELDS} fields"),
            DecodeError::DuplicateTag { tag } => write!(f, "tag {tag} appears twice"),
            DecodeError::MsgTypeNotFirst => f.write_str("MsgType (35) is not the first body field"),
            DecodeError::MissingTag { tag } => write!(f, "required tag {tag} is missing"),
            DecodeError::NotNumeric { tag } => write!(f, "tag {tag} must be numeric"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Counts of rejected inputs per [`DecodeError`] variant, plus accepted messages.
#[derive(Debug, Clone, Default)]
pub struct DecodeStats {
    /// Messages decoded successfully.
    pub accepted: u64,
    /// Rejections by variant, indexed by [`DecodeError::index`].
    pub rejected: [u64; DecodeError::COUNT],
}

impl DecodeStats {
    /// Counts one outcome.
    #[inline]
    pub fn record<T>(&mut self, r: &Result<T, DecodeError>) {
        match r {
            Ok(_) => self.accepted += 1,
            Err(e) => self.rejected[e.index()] += 1,
        }
    }
    /// Total rejections of any kind.
    pub fn total_rejected(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

/// One field of a decoded message: tag and the value's byte range in the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FieldRef {
    tag: u32,
    /// Offsets fit in u16: a message is at most MAX_MSG_LEN (< 64 KiB) bytes. Keeping the
    /// entry at 8 bytes keeps `Message` at ~530 bytes, which matters because it is returned
    /// by value.
    start: u16,
    end: u16,
}
const _: () = assert!(MAX_MSG_LEN < u16::MAX as usize);

/// A validated FIX message borrowing its bytes; fields are indexed, not copied.
#[derive(Clone)]
pub struct Message<'a> {
    bytes: &'a [u8],
    fields: [FieldRef; MAX_FIELDS],
    /// `slot[tag % 64]` = 1 + index of the first field whose tag has that residue, 0 if none:
    /// most lookups are one probe, a miss on an empty residue is free, collisions scan.
    slot: [u8; 64],
    len: usize,
    seq_num: u64,
}
const _: () = assert!(MAX_FIELDS <= u8::MAX as usize);

impl fmt::Debug for Message<'_> {
    /// Prints `tag=value|...` with the values of Username (553) and Password (554) redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Message(")?;
        for fr in &self.fields[..self.len] {
            if fr.tag == tag::PASSWORD || fr.tag == tag::USERNAME {
                write!(f, "{}=<redacted>|", fr.tag)?;
            } else {
                let v = &self.bytes[fr.start as usize..fr.end as usize];
                write!(f, "{}={}|", fr.tag, String::from_utf8_lossy(v))?;
            }
        }
        f.write_str(")")
    }
}

impl<'a> Message<'a> {
    /// The whole message, `8=` through the CheckSum's SOH.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// MsgType (35) value, e.g. `b"8"` for an ExecutionReport.
    pub fn msg_type(&self) -> &'a [u8] {
        // Validated present and first in `decode`.
        let f = self.fields[0];
        &self.bytes[f.start as usize..f.end as usize]
    }
    /// MsgSeqNum (34), validated numeric and positive.
    pub fn seq_num(&self) -> u64 {
        self.seq_num
    }
    /// The value of `tag`, if present.
    #[inline]
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        let s = self.slot[(tag % 64) as usize] as usize;
        if s == 0 {
            return None;
        }
        let f = self.fields[s - 1];
        let f = if f.tag == tag {
            f
        } else {
            *self.fields[s..self.len].iter().find(|f| f.tag == tag)?
        };
        Some(&self.bytes[f.start as usize..f.end as usize])
    }
    /// The value of `tag` as an unsigned integer; `Err` if present but not numeric.
    pub fn get_u64(&self, tag: u32) -> Result<Option<u64>, DecodeError> {
        self.get_parsed(tag, parse_u64)
    }
    /// The value of `tag` as a decimal; `Err` if present but not a decimal.
    pub fn get_f64(&self, tag: u32) -> Result<Option<f64>, DecodeError> {
        self.get_parsed(tag, parse_decimal)
    }
    /// The value of `tag` read by `parse`; `Err` if present but `parse` refuses it.
    #[inline]
    fn get_parsed<T>(
        &self,
        tag: u32,
        parse: fn(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, DecodeError> {
        match self.get(tag) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).ok_or(DecodeError::NotNumeric { tag }),
        }
    }
    /// The single-character value of `tag` (`None` if absent or longer than one byte).
    pub fn get_char(&self, tag: u32) -> Option<u8> {
        match self.get(tag) {
            Some([c]) => Some(*c),
            _ => None,
        }
    }
    /// Whether `tag` is `Y`.
    pub fn flag(&self, tag: u32) -> bool {
        self.get_char(tag) == Some(b'Y')
    }
    /// Number of fields (header, body and trailer).
    pub fn field_count(&self) -> usize {
        self.len
    }
    /// Iterates `(tag, value)` in wire order.
    pub fn fields(&self) -> impl Iterator<Item = (u32, &'a [u8])> + '_ {
        let b = self.bytes;
        self.fields[..self.len]
            .iter()
            .map(move |f| (f.tag, &b[f.start as usize..f.end as usize]))
    }
}

/// Checks the frame at the start of `buf` and returns the whole message's length.
///
/// Only the frame is checked: BeginString, BodyLength, the trailer position and the checksum.
/// A prefix that cannot become a valid frame is rejected as early as possible, so garbage
/// never waits for more bytes.
///
/// # Errors
/// [`DecodeError::Incomplete`] if `buf` is a valid but unfinished prefix; otherwise the first
/// frame error found.
pub fn frame_len(buf: &[u8]) -> Result<usize, DecodeError> {
    let n = BEGIN_STRING.len();
    let have = buf.len().min(n);
    if buf[..have] != BEGIN_STRING[..have] {
        return Err(DecodeError::BadBeginString);
    }
    if buf.len() < n + 2 {
        if buf.len() > n && buf[n] != b'9' {
            return Err(DecodeError::BadBodyLength);
        }
        return Err(DecodeError::Incomplete);
    }
    if &buf[n..n + 2] != b"9=" {
        return Err(DecodeError::BadBodyLength);
    }
    let mut i = n + 2;
    let mut body_len: u32 = 0;
    let digits_start = i;
    loop {
        let Some(&c) = buf.get(i) else {
            return Err(DecodeError::Incomplete);
        };
        if c == SOH {
            break;
        }
        if !c.is_ascii_digit() {
            return Err(DecodeError::BadBodyLength);
        }
        if i - digits_start >= MAX_LEN_DIGITS {
            return Err(DecodeError::BodyTooLong { declared: body_len });
        }
        body_len = body_len * 10 + u32::from(c - b'0');
        i += 1;
    }
    let digits = i - digits_start;
    if digits == 0 || (digits > 1 && buf[digits_start] == b'0') {
        return Err(DecodeError::BadBodyLength);
    }
    if body_len as usize > MAX_BODY_LEN {
        return Err(DecodeError::BodyTooLong { declared: body_len });
    }
    if body_len == 0 {
        return Err(DecodeError::BadTrailer);
    }
    let body_start = i + 1;
    let trailer = body_start + body_len as usize;
    let total = trailer + 7;
    // Check what is available of the trailer before asking for more bytes.
    let tail = &buf[trailer.min(buf.len())..total.min(buf.len())];
    let want = b"10=";
    let k = tail.len().min(3);
    if tail[..k] != want[..k] || (buf.len() >= trailer && buf[trailer - 1] != SOH) {
        return Err(DecodeError::BadTrailer);
    }
    for (j, &c) in tail.iter().enumerate().skip(3) {
        let ok = if j < 6 { c.is_ascii_digit() } else { c == SOH };
        if !ok {
            return Err(DecodeError::BadCheckSumField);
        }
    }
    if buf.len() < total {
        return Err(DecodeError::Incomplete);
    }
    let d = &buf[trailer + 3..trailer + 6];
    let declared =
        u16::from(d[0] - b'0') * 100 + u16::from(d[1] - b'0') * 10 + u16::from(d[2] - b'0');
    let computed = checksum(&buf[..trailer]);
    if declared != u16::from(computed) {
        return Err(DecodeError::CheckSumMismatch { declared, computed });
    }
    Ok(total)
}

/// Sum of the bytes modulo 256 (the FIX CheckSum).
#[inline]
pub fn checksum(bytes: &[u8]) -> u8 {
    // Summing in u32 lanes lets the compiler vectorize; the modulo is taken once.
    let mut s: u32 = 0;
    for &b in bytes {
        s = s.wrapping_add(u32::from(b));
    }
    (s & 0xff) as u8
}

/// Decodes one complete message at the start of `buf`; returns it and the bytes it used.
///
/// # Errors
/// Any [`DecodeError`]; [`DecodeError::Incomplete`] when more bytes are needed.
pub fn decode(buf: &[u8]) -> Result<(Message<'_>, usize), DecodeError> {
    let total = frame_len(buf)?;
    let bytes = &buf[..total];
    let mut msg = Message {
        bytes,
        fields: [FieldRef::default(); MAX_FIELDS],
        slot: [0; 64],
        len: 0,
        seq_num: 0,
    };
    // Duplicate detection: a bitset for tags below 1024, a scan for the rest.
    let mut seen = [0u64; 16];
    // Skip 8= and 9= (validated by frame_len) and stop before 10=.
    let mut i = BEGIN_STRING.len();
    while bytes[i] != SOH {
        i += 1;
    }
    i += 1;
    let body_end = total - 7;
    while i < body_end {
        let (t, vstart) = parse_tag(bytes, i, body_end)?;
        // body_end - 1 is SOH (checked by frame_len), so the value ends inside the body.
        i = find_soh(bytes, vstart, body_end);
        if i == vstart {
            return Err(DecodeError::EmptyValue { tag: t });
        }
        check_new_tag(&mut seen, &msg.fields[..msg.len], t)?;
        if msg.len == MAX_FIELDS {
            return Err(DecodeError::TooManyFields);
        }
        if msg.len == 0 && t != tag::MSG_TYPE {
            return Err(DecodeError::MsgTypeNotFirst);
        }
        msg.fields[msg.len] = FieldRef {
            tag: t,
            start: vstart as u16,
            end: i as u16,
        };
        msg.len += 1;
        let h = (t % 64) as usize;
        if msg.slot[h] == 0 {
            msg.slot[h] = msg.len as u8;
        }
        i += 1;
    }
    msg.seq_num = required_header(&msg, &seen)?;
    Ok((msg, total))
}

/// Parses the `tag=` of the field starting at `field_start`; returns the tag and where its
/// value starts.
#[inline]
fn parse_tag(
    bytes: &[u8],
    field_start: usize,
    body_end: usize,
) -> Result<(u32, usize), DecodeError> {
    let malformed = DecodeError::MalformedField {
        offset: field_start as u32,
    };
    let mut i = field_start;
    let mut t: u32 = 0;
    let mut nd = 0;
    while i < body_end && bytes[i].is_ascii_digit() {
        if nd == 9 {
            return Err(malformed);
        }
        t = t * 10 + u32::from(bytes[i] - b'0');
        nd += 1;
        i += 1;
    }
    if nd == 0 || bytes[field_start] == b'0' || i >= body_end || bytes[i] != b'=' {
        return Err(malformed);
    }
    Ok((t, i + 1))
}

/// Refuses a tag seen before in this message (a bitset for tags below 1024, a scan of
/// `fields` for the rest) or a second BeginString/BodyLength/CheckSum; marks it seen.
#[inline]
fn check_new_tag(seen: &mut [u64; 16], fields: &[FieldRef], t: u32) -> Result<(), DecodeError> {
    if t == tag::BEGIN_STRING || t == tag::BODY_LENGTH || t == tag::CHECK_SUM {
        return Err(DecodeError::DuplicateTag { tag: t });
    }
    if t < 1024 {
        let (w, b) = ((t / 64) as usize, t % 64);
        if seen[w] & (1 << b) != 0 {
            return Err(DecodeError::DuplicateTag { tag: t });
        }
        seen[w] |= 1 << b;
    } else if fields.iter().any(|f| f.tag == t) {
        return Err(DecodeError::DuplicateTag { tag: t });
    }
    Ok(())
}

/// Checks the required header tags are there; returns MsgSeqNum (> 0).
fn required_header(msg: &Message<'_>, seen: &[u64; 16]) -> Result<u64, DecodeError> {
    for required in [tag::SENDER_COMP_ID, tag::TARGET_COMP_ID, tag::SENDING_TIME] {
        if !is_seen(seen, required) {
            return Err(DecodeError::MissingTag { tag: required });
        }
    }
    if !is_seen(seen, tag::MSG_SEQ_NUM) {
        return Err(DecodeError::MissingTag {
            tag: tag::MSG_SEQ_NUM,
        });
    }
    match msg.get(tag::MSG_SEQ_NUM).and_then(parse_u64) {
        Some(s) if s > 0 => Ok(s),
        _ => Err(DecodeError::NotNumeric {
            tag: tag::MSG_SEQ_NUM,
        }),
    }
}

/// Index of the first SOH in `b[i..end]` (or `end`), eight bytes per step: a word XOR
/// 0x01.. turns SOH bytes into zero bytes, and the classic "has a zero byte" test
/// (`(x - 0x01..) & !x & 0x80..`) marks the first one exactly (bits above it may be false
/// positives, the lowest set bit never is).
#[inline]
fn find_soh(b: &[u8], mut i: usize, end: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while i + 8 <= end {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(w) ^ LO;
        let m = x.wrapping_sub(LO) & !x & HI;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < end && b[i] != SOH {
        i += 1;
    }
    i
}

#[inline]
fn is_seen(seen: &[u64; 16], t: u32) -> bool {
    seen[(t / 64) as usize] & (1 << (t % 64)) != 0
}

/// Where to restart after a frame error: the offset of the next `8=FIX.4.4<SOH>` after the
/// first byte (or of a partial match at the end of `buf`), else `buf.len()`.
pub fn resync_offset(buf: &[u8]) -> usize {
    let n = BEGIN_STRING.len();
    for i in 1..buf.len() {
        let end = (i + n).min(buf.len());
        if buf[i..end] == BEGIN_STRING[..end - i] {
            return i;
        }
    }
    buf.len()
}

/// Parses 1..=20 ASCII digits into a `u64` (the workspace's one checked parser).
pub use shm_layout::ascii::parse_u64;

/// Parses a FIX decimal (`-?digits[.digits]`, at most 18 significant digits) to the nearest
/// `f64` (one correctly rounded division of two exactly representable numbers).
pub fn parse_decimal(v: &[u8]) -> Option<f64> {
    let (neg, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    if digits.is_empty() {
        return None;
    }
    let mut mant: u64 = 0;
    let mut nd = 0;
    let mut frac: Option<u32> = None;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                if nd == 18 {
                    return None;
                }
                mant = mant * 10 + u64::from(c - b'0');
                if mant != 0 {
                    nd += 1;
                }
                if let Some(f) = frac.as_mut() {
                    *f += 1;
                }
            }
            b'.' if frac.is_none() => frac = Some(0),
            _ => return None,
        }
    }
    if digits == b"." {
        return None;
    }
    let scale = frac.unwrap_or(0);
    if scale > 22 {
        return None;
    }
    // Exact below 2^53 significant value (one rounding); beyond, still finite and close.
    let x = mant as f64 / POW10[scale as usize];
    Some(if neg { -x } else { x })
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The message does not fit the buffer (or exceeds [`MAX_BODY_LEN`]).
    Overflow,
    /// A value contains SOH or is empty.
    BadValue {
        /// The field's tag.
        tag: u32,
    },
    /// A number is not finite or is out of the range this encoder prints.
    BadNumber {
        /// The field's tag.
        tag: u32,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::Overflow => write!(f, "FIX message longer than {MAX_BODY_LEN} bytes"),
            EncodeError::BadValue { tag } => write!(f, "tag {tag}: empty value or value with SOH"),
            EncodeError::BadNumber { tag } => {
                write!(f, "tag {tag}: number not finite or too large")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Writes one FIX 4.4 message into a fixed buffer. Fields are appended in call order after
/// MsgType; [`MsgWriter::finish`] adds BeginString, BodyLength and CheckSum.
///
/// The first error sticks and is returned by `finish`, so callers chain field calls without
/// checking each one.
pub struct MsgWriter<'b> {
    buf: &'b mut [u8],
    pos: usize,
    err: Option<EncodeError>,
}

impl<'b> MsgWriter<'b> {
    /// Starts a message of type `msg_type` (e.g. `b"D"`) in `buf` (use
    /// `[0u8; MAX_MSG_LEN]`).
    pub fn new(buf: &'b mut [u8], msg_type: &[u8]) -> Self {
        let mut w = MsgWriter {
            buf,
            pos: HEADER_RESERVE,
            err: None,
        };
        if w.buf.len() < HEADER_RESERVE + 8 {
            w.err = Some(EncodeError::Overflow);
            w.pos = 0;
        }
        w.str(tag::MSG_TYPE, msg_type);
        w
    }

    /// Reserves room for a field whose value is at most `max_value` bytes and writes
    /// `<tag>=`; returns `false` (error recorded) when it does not fit.
    #[inline]
    fn field(&mut self, tag: u32, max_value: usize) -> bool {
        if self.err.is_some() {
            return false;
        }
        // 10 tag digits + '=' + value + SOH, and 7 bytes kept for the trailer.
        let end = self.pos + 12 + max_value;
        if end + 7 > self.buf.len() || end - HEADER_RESERVE > MAX_BODY_LEN {
            self.err = Some(EncodeError::Overflow);
            return false;
        }
        let n = digits(u64::from(tag));
        let mut t = tag;
        for k in (0..n).rev() {
            self.buf[self.pos + k] = b'0' + (t % 10) as u8;
            t /= 10;
        }
        self.buf[self.pos + n] = b'=';
        self.pos += n + 1;
        true
    }

    #[inline]
    fn value(&mut self, v: &[u8]) {
        self.buf[self.pos..self.pos + v.len()].copy_from_slice(v);
        self.buf[self.pos + v.len()] = SOH;
        self.pos += v.len() + 1;
    }

    /// Appends a string field.
    pub fn str(&mut self, tag: u32, value: &[u8]) -> &mut Self {
        if value.is_empty() || value.contains(&SOH) {
            self.err.get_or_insert(EncodeError::BadValue { tag });
            return self;
        }
        if self.field(tag, value.len()) {
            self.value(value);
        }
        self
    }

    /// Appends a one-character field.
    pub fn char(&mut self, tag: u32, c: u8) -> &mut Self {
        if c == SOH {
            self.err.get_or_insert(EncodeError::BadValue { tag });
        } else if self.field(tag, 1) {
            self.value(&[c]);
        }
        self
    }

    /// Appends an unsigned integer field.
    pub fn u64(&mut self, tag: u32, v: u64) -> &mut Self {
        if self.field(tag, 20) {
            let n = digits(v);
            let mut x = v;
            for k in (0..n).rev() {
                self.buf[self.pos + k] = b'0' + (x % 10) as u8;
                x /= 10;
            }
            self.buf[self.pos + n] = SOH;
            self.pos += n + 1;
        }
        self
    }

    /// Appends a decimal field with up to 8 decimals (trailing zeros trimmed). Values must be
    /// finite and below 1e10 in magnitude.
    pub fn decimal(&mut self, tag: u32, v: f64) -> &mut Self {
        let mut tmp = [0u8; 32];
        match fmt_decimal(v, &mut tmp) {
            Some(len) => {
                if self.field(tag, len) {
                    self.value(&tmp[..len]);
                }
            }
            None => {
                self.err.get_or_insert(EncodeError::BadNumber { tag });
            }
        }
        self
    }

    /// Appends a UTCTimestamp field (`YYYYMMDD-HH:MM:SS.sss`) for `epoch_ns`.
    pub fn timestamp(&mut self, tag: u32, epoch_ns: u64) -> &mut Self {
        if self.field(tag, 21) {
            let out: &mut [u8; 21] = (&mut self.buf[self.pos..self.pos + 21])
                .try_into()
                .expect("21 bytes reserved by field()");
            fmt_utc_timestamp(epoch_ns, out);
            self.buf[self.pos + 21] = SOH;
            self.pos += 22;
        }
        self
    }

    /// Adds the header and trailer and returns the finished message.
    ///
    /// # Errors
    /// The first [`EncodeError`] any field call hit.
    pub fn finish(self) -> Result<&'b [u8], EncodeError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let body_len = self.pos - HEADER_RESERVE;
        let mut tmp = [0u8; 20];
        let digits = fmt_u64(body_len as u64, &mut tmp);
        let hlen = BEGIN_STRING.len() + 2 + digits.len() + 1;
        let start = HEADER_RESERVE - hlen;
        let buf = self.buf;
        buf[start..start + BEGIN_STRING.len()].copy_from_slice(BEGIN_STRING);
        let mut p = start + BEGIN_STRING.len();
        buf[p..p + 2].copy_from_slice(b"9=");
        p += 2;
        buf[p..p + digits.len()].copy_from_slice(digits);
        p += digits.len();
        buf[p] = SOH;
        let cs = checksum(&buf[start..self.pos]);
        let mut p = self.pos;
        buf[p..p + 3].copy_from_slice(b"10=");
        p += 3;
        buf[p] = b'0' + cs / 100;
        buf[p + 1] = b'0' + (cs / 10) % 10;
        buf[p + 2] = b'0' + cs % 10;
        buf[p + 3] = SOH;
        Ok(&buf[start..p + 4])
    }
}

/// Number of decimal digits of `v` (1 for 0).
#[inline]
fn digits(v: u64) -> usize {
    let mut n = 1;
    let mut x = v;
    while x >= 10 {
        x /= 10;
        n += 1;
    }
    n
}

/// Formats `v` in decimal into the end of `tmp`; returns the digits.
#[inline]
pub fn fmt_u64(mut v: u64, tmp: &mut [u8; 20]) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &tmp[i..]
}

/// Formats a decimal with up to 8 fractional digits (trailing zeros trimmed) into `out`;
/// returns the length, or `None` for non-finite values or magnitudes of 1e10 or more.
pub fn fmt_decimal(v: f64, out: &mut [u8; 32]) -> Option<usize> {
    if !v.is_finite() || v.abs() >= 1e10 {
        return None;
    }
    let scaled = (v.abs() * 1e8).round() as u64;
    let (int, mut frac) = (scaled / 100_000_000, scaled % 100_000_000);
    let mut n = 0;
    if v < 0.0 && scaled != 0 {
        out[0] = b'-';
        n = 1;
    }
    let mut tmp = [0u8; 20];
    let d = fmt_u64(int, &mut tmp);
    out[n..n + d.len()].copy_from_slice(d);
    n += d.len();
    if frac != 0 {
        out[n] = b'.';
        n += 1;
        let mut width = 8;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        let mut div = 10u64.pow(width - 1);
        for _ in 0..width {
            out[n] = b'0' + ((frac / div) % 10) as u8;
            n += 1;
            div /= 10;
        }
    }
    Some(n)
}

/// Writes `YYYYMMDD-HH:MM:SS.sss` (UTC) for `epoch_ns` into `out`.
pub fn fmt_utc_timestamp(epoch_ns: u64, out: &mut [u8; 21]) {
    let ms_total = epoch_ns / 1_000_000;
    let ms = (ms_total % 1000) as u32;
    let secs = ms_total / 1000;
    let days = (secs / 86_400) as i64;
    let sod = (secs % 86_400) as u32;
    let (y, m, d) = shm_layout::clock::civil_from_days(days);
    let mut put = |at: usize, v: u32, w: usize| {
        let mut x = v;
        for k in (0..w).rev() {
            out[at + k] = b'0' + (x % 10) as u8;
            x /= 10;
        }
    };
    put(0, y as u32, 4);
    put(4, m, 2);
    put(6, d, 2);
    put(9, sod / 3600, 2);
    put(12, (sod / 60) % 60, 2);
    put(15, sod % 60, 2);
    put(18, ms, 3);
    out[8] = b'-';
    out[11] = b':';
    out[14] = b':';
    out[17] = b'.';
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(buf: &mut [u8; MAX_MSG_LEN]) -> Vec<u8> {
        let mut w = MsgWriter::new(buf, b"D");
        w.str(tag::SENDER_COMP_ID, b"HEDGER")
            .str(tag::TARGET_COMP_ID, b"EXCH")
            .u64(tag::MSG_SEQ_NUM, 42)
            .timestamp(tag::SENDING_TIME, 1_700_000_000_123_000_000)
            .str(tag::CL_ORD_ID, b"1001")
            .str(tag::SYMBOL, b"BTC-PERPETUAL")
            .char(tag::SIDE, b'1')
            .decimal(tag::ORDER_QTY, 10.0)
            .char(tag::ORD_TYPE, b'2')
            .decimal(tag::PRICE, 43_210.5)
            .char(tag::TIME_IN_FORCE, b'3');
        w.finish().unwrap().to_vec()
    }

    /// A `msg_type` message from A to B (seq 1, a fixed sending time) with the string
    /// fields `body`.
    fn with_test_header(msg_type: &[u8], body: &[(u32, &[u8])]) -> Vec<u8> {
        let mut buf = [0u8; MAX_MSG_LEN];
        let mut w = MsgWriter::new(&mut buf, msg_type);
        w.str(tag::SENDER_COMP_ID, b"A")
            .str(tag::TARGET_COMP_ID, b"B")
            .u64(tag::MSG_SEQ_NUM, 1)
            .str(tag::SENDING_TIME, b"20240101-00:00:00.000");
        for (t, v) in body {
            w.str(*t, v);
        }
        w.finish().unwrap().to_vec()
    }

    #[test]
    fn encoded_message_round_trips_with_valid_length_and_checksum() {
        let mut buf = [0u8; MAX_MSG_LEN];
        let m = sample(&mut buf);
        let s = String::from_utf8(m.clone()).unwrap().replace('\x01', "|");
        assert!(s.starts_with("8=FIX.4.4|9="), "{s}");
        assert!(s.contains("|52=20231114-22:13:20.123|"), "{s}");
        assert!(s.contains("|44=43210.5|"), "{s}");
        let (msg, used) = decode(&m).unwrap();
        assert_eq!(used, m.len());
        assert_eq!(msg.msg_type(), b"D");
        assert_eq!(msg.seq_num(), 42);
        assert_eq!(msg.get(tag::SYMBOL), Some(&b"BTC-PERPETUAL"[..]));
        assert_eq!(msg.get_f64(tag::PRICE), Ok(Some(43_210.5)));
    }

    #[test]
    fn soh_finder_agrees_with_a_plain_scan() {
        let mut b = [b'x'; 40];
        for p in 0..40 {
            b.fill(b'x');
            b[p] = SOH;
            for start in 0..=p {
                assert_eq!(find_soh(&b, start, 40), p);
            }
            assert_eq!(find_soh(&b, p + 1, 40), 40);
            b[p] = 0x81; // high bit set, not SOH
            assert_eq!(find_soh(&b, 0, 40), 40);
        }
    }

    #[test]
    fn lookups_find_colliding_tags() {
        let m = with_test_header(
            b"8",
            &[
                (tag::CL_ORD_ID, b"c11"),
                (75, b"c75"),   // 75 % 64 == 11
                (139, b"c139"), // 139 % 64 == 11
            ],
        );
        let (msg, _) = decode(&m).unwrap();
        assert_eq!(msg.get(11), Some(&b"c11"[..]));
        assert_eq!(msg.get(75), Some(&b"c75"[..]));
        assert_eq!(msg.get(139), Some(&b"c139"[..]));
        assert_eq!(msg.get(203), None);
        assert_eq!(msg.get(12), None);
    }

    #[test]
    fn decimals_format_and_parse() {
        let mut out = [0u8; 32];
        for (v, s) in [
            (0.0, "0"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (0.00000001, "0.00000001"),
            (123456789.12345678, "123456789.12345678"),
            (0.1 + 0.2, "0.3"),
        ] {
            let n = fmt_decimal(v, &mut out).unwrap();
            assert_eq!(core::str::from_utf8(&out[..n]).unwrap(), s);
        }
        assert!(fmt_decimal(f64::NAN, &mut out).is_none());
        assert_eq!(parse_decimal(b"43210.5"), Some(43210.5));
        assert_eq!(parse_decimal(b"-0.1"), Some(-0.1));
        assert_eq!(parse_decimal(b"7"), Some(7.0));
        assert_eq!(parse_decimal(b"."), None);
        assert_eq!(parse_decimal(b"1.2.3"), None);
        assert_eq!(parse_decimal(b"1e5"), None);
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"12a"), None);
    }

    #[test]
    fn timestamps_match_known_dates() {
        let mut out = [0u8; 21];
        fmt_utc_timestamp(0, &mut out);
        assert_eq!(&out, b"19700101-00:00:00.000");
        fmt_utc_timestamp(951_782_400_000_000_000 + 999_000_000, &mut out); // 2000-02-29
        assert_eq!(&out, b"20000229-00:00:00.999");
    }

    #[test]
    fn debug_redacts_credentials() {
        let m = with_test_header(
            b"A",
            &[(tag::USERNAME, b"alice"), (tag::PASSWORD, b"s3cret")],
        );
        let (msg, _) = decode(&m).unwrap();
        let d = format!("{msg:?}");
        assert!(!d.contains("s3cret") && !d.contains("alice"), "{d}");
        assert!(d.contains("554=<redacted>"), "{d}");
    }

    #[test]
    fn stream_prefixes_are_incomplete_and_garbage_is_rejected_early() {
        let mut buf = [0u8; MAX_MSG_LEN];
        let m = sample(&mut buf);
        for cut in 0..m.len() {
            assert_eq!(
                frame_len(&m[..cut]),
                Err(DecodeError::Incomplete),
                "cut {cut}"
            );
        }
        assert_eq!(
            frame_len(b"GET / HTTP/1.1"),
            Err(DecodeError::BadBeginString)
        );
        assert_eq!(
            frame_len(b"8=FIX.4.4\x019=99999999\x01"),
            Err(DecodeError::BodyTooLong { declared: 999_999 })
        );
        let mut two = m.clone();
        two.extend_from_slice(&m);
        assert_eq!(resync_offset(&two), m.len());
    }
}
