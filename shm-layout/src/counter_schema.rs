//! Counters declared once: a process lists its counters and gauges as a typed table (name,
//! kind, unit, scope, help), and that table generates everything else.
//!
//! - The hot-path layout: [`counter_schema!`] makes an enum with one variant per counter;
//!   [`CounterSet`] maps a variant (and, for per-underlying or labelled counters, an index) to
//!   its slot with an indexed load, so publishing is one relaxed store, no string.
//! - The shared-memory registration: [`crate::CountersWriter::register`] writes each counter's
//!   label (`name`, `name{underlying="BTC"}`, `name{reason="stale"}`), kind, unit and help into
//!   the `cnc-<role>` segment.
//! - Every reader (`hedgectl stat`, the Prometheus export, the risk bridge) takes names, units
//!   and help from the segment, so it shows the counters of any build, including ones it has
//!   never heard of.
//!
//! ```
//! use shm_layout::counter_schema::{CounterDef, CounterSchema};
//! shm_layout::counter_schema! {
//!     /// Counters of an example process.
//!     pub enum Example {
//!         /// Orders sent.
//!         OrdersSent = CounterDef::counter("orders_sent", "orders", "Orders sent"),
//!         /// Net delta of one underlying.
//!         NetDelta = CounterDef::gauge("net_delta", "contracts", "Net delta").per_underlying(),
//!     }
//! }
//! let dir = tempfile::tempdir().unwrap();
//! let mut w = shm_layout::CountersWriter::create(dir.path(), "example", shm_layout::StalePolicy::Fail).unwrap();
//! let set = w.register::<Example>(&["BTC", "ETH"]);
//! set.add(Example::OrdersSent, 2);
//! set.set_f64_at(Example::NetDelta, 1, 0, -0.5);
//! let r = shm_layout::CountersReader::open(dir.path(), "example", Default::default()).unwrap();
//! let recs = r.records();
//! assert_eq!(recs[0].label, "orders_sent");
//! assert_eq!(recs[0].unit, "orders");
//! assert_eq!(recs[2].label, r#"net_delta{underlying="ETH"}"#);
//! assert_eq!(Example::NetDelta.def().help, "Net delta");
//! ```

use crate::counters::{Counter, Gauge, RecordMeta, HELP_LEN, KIND_COUNTER, KIND_GAUGE, UNIT_LEN};
use std::marker::PhantomData;

/// Longest metric name a schema may declare (the rest of the label holds `{key="value"}`).
pub const NAME_LEN: usize = 48;

/// What a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// Monotonic u64 (Prometheus `counter`).
    Counter,
    /// Instantaneous f64 (Prometheus `gauge`).
    Gauge,
}

impl CounterKind {
    /// The record's `kind` word.
    pub const fn word(self) -> u32 {
        match self {
            CounterKind::Counter => KIND_COUNTER,
            CounterKind::Gauge => KIND_GAUGE,
        }
    }
}

/// How many instances a counter has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One for the process.
    Global,
    /// One per underlying, labelled `underlying="<symbol>"`.
    PerUnderlying,
}

/// A fixed label dimension: one instance per value (e.g. `reason` of a reject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelSet {
    /// Label key (`reason`, `limit`, `kind`).
    pub key: &'static str,
    /// Label values, in slot order.
    pub values: &'static [&'static str],
}

/// One declared counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterDef {
    /// Metric name, `snake_case`, at most [`NAME_LEN`] bytes.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: CounterKind,
    /// Unit of the value (`events`, `ns`, `contracts`, ...; empty if dimensionless), at most
    /// [`UNIT_LEN`] bytes.
    pub unit: &'static str,
    /// Global or per underlying.
    pub scope: Scope,
    /// A fixed label dimension, if any.
    pub by: Option<LabelSet>,
    /// One line for operators, at most [`HELP_LEN`] bytes.
    pub help: &'static str,
}

impl CounterDef {
    const fn new(
        name: &'static str,
        kind: CounterKind,
        unit: &'static str,
        help: &'static str,
    ) -> Self {
        assert!(
            !name.is_empty() && name.len() <= NAME_LEN,
            "counter name length"
        );
        assert!(unit.len() <= UNIT_LEN, "counter unit longer than UNIT_LEN");
        assert!(help.len() <= HELP_LEN, "counter help longer than HELP_LEN");
        CounterDef {
            name,
            kind,
            unit,
            scope: Scope::Global,
            by: None,
            help,
        }
    }

    /// A global monotonic counter. Lengths are checked at compile time in a `const`.
    pub const fn counter(name: &'static str, unit: &'static str, help: &'static str) -> Self {
        Self::new(name, CounterKind::Counter, unit, help)
    }

    /// A global gauge.
    pub const fn gauge(name: &'static str, unit: &'static str, help: &'static str) -> Self {
        Self::new(name, CounterKind::Gauge, unit, help)
    }

    /// The same, one instance per underlying.
    pub const fn per_underlying(self) -> Self {
        CounterDef {
            scope: Scope::PerUnderlying,
            ..self
        }
    }

    /// The same, one instance per value of label `key`.
    pub const fn by(self, key: &'static str, values: &'static [&'static str]) -> Self {
        assert!(!values.is_empty(), "a label set needs values");
        CounterDef {
            by: Some(LabelSet { key, values }),
            ..self
        }
    }

    /// Instances per underlying (the label set's size, or 1).
    #[inline]
    pub const fn width(&self) -> usize {
        match self.by {
            Some(b) => b.values.len(),
            None => 1,
        }
    }

    /// The label of one instance: `name`, or `name{underlying="u",key="v"}` with the pairs
    /// that apply.
    pub fn label(&self, underlying: Option<&str>, by_value: Option<&str>) -> String {
        let mut pairs = Vec::new();
        if let Some(u) = underlying {
            pairs.push(format!("underlying=\"{}\"", escape(u)));
        }
        if let (Some(b), Some(v)) = (self.by, by_value) {
            pairs.push(format!("{}=\"{}\"", b.key, escape(v)));
        }
        if pairs.is_empty() {
            self.name.to_string()
        } else {
            format!("{}{{{}}}", self.name, pairs.join(","))
        }
    }
}

/// Splits a label made by [`CounterDef::label`] into its name and its `(key, value)` pairs,
/// undoing the value escaping: the one reader of that format for tools. `None` when `label`
/// is not of that form (e.g. cut at the segment's label length).
///
/// ```
/// use shm_layout::counter_schema::parse_label;
/// assert_eq!(parse_label("orders_sent"), Some(("orders_sent", vec![])));
/// let (name, pairs) = parse_label(r#"net_delta{underlying="BTC"}"#).unwrap();
/// assert_eq!((name, pairs), ("net_delta", vec![("underlying", "BTC".to_string())]));
/// assert_eq!(parse_label(r#"x{k="cut"#), None);
/// ```
pub fn parse_label(label: &str) -> Option<(&str, Vec<(&str, String)>)> {
    let Some((name, mut rest)) = label.split_once('{') else {
        return (!label.contains(['}', '"', '='])).then_some((label, Vec::new()));
    };
    let mut pairs = Vec::new();
    loop {
        let (key, r) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        pairs.push((key, value));
        rest = &r[end + 1..];
        if rest == "}" {
            return Some((name, pairs));
        }
        rest = rest.strip_prefix(',')?;
    }
}

/// Prometheus label-value escaping (`\`, `"`, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A process's counters: an enum whose variants index [`CounterSchema::DEFS`]. Made by
/// [`counter_schema!`].
pub trait CounterSchema: Copy + 'static {
    /// The declarations, in variant order.
    const DEFS: &'static [CounterDef];
    /// The variant's index in [`CounterSchema::DEFS`].
    fn index(self) -> usize;
    /// The variant's declaration.
    fn def(self) -> &'static CounterDef {
        &Self::DEFS[self.index()]
    }
}

/// Declares a counter schema: an enum with one variant per counter and its
/// [`CounterSchema`] table. Each variant is `Name = <const CounterDef expression>`.
#[macro_export]
macro_rules! counter_schema {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $var:ident = $def:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(usize)]
        $vis enum $name {
            $( $(#[$vmeta])* $var ),+
        }
        impl $crate::counter_schema::CounterSchema for $name {
            const DEFS: &'static [$crate::counter_schema::CounterDef] = &[ $( $def ),+ ];
            #[inline]
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

/// The label values of a wire enum with a `const ALL: [Self; N]` and a `const fn name(self)`,
/// as a `[&str; N]` usable in a schema's `.by(...)` (evaluated at compile time).
///
/// ```
/// #[derive(Clone, Copy)]
/// enum Side { Buy, Sell }
/// impl Side {
///     const ALL: [Side; 2] = [Side::Buy, Side::Sell];
///     const fn name(self) -> &'static str {
///         match self { Side::Buy => "buy", Side::Sell => "sell" }
///     }
/// }
/// const SIDES: [&str; 2] = shm_layout::label_values!(Side);
/// assert_eq!(SIDES, ["buy", "sell"]);
/// ```
#[macro_export]
macro_rules! label_values {
    ($ty:ty) => {{
        let mut out = [""; <$ty>::ALL.len()];
        let mut i = 0;
        while i < out.len() {
            out[i] = <$ty>::ALL[i].name();
            i += 1;
        }
        out
    }};
}

/// The hot-path handles of one schema: one slot per instance, found by index.
pub struct CounterSet<S> {
    slots: Box<[Counter]>,
    /// First slot of each declaration.
    base: Box<[usize]>,
    underlyings: usize,
    _schema: PhantomData<S>,
}

impl<S: CounterSchema> CounterSet<S> {
    /// Allocates every instance through `alloc`, in declaration order (underlying-major).
    pub(crate) fn build(
        underlyings: &[&str],
        alloc: &mut dyn FnMut(RecordMeta<'_>) -> Counter,
    ) -> Self {
        let mut slots = Vec::new();
        let mut base = Vec::with_capacity(S::DEFS.len());
        let globals: [Option<&str>; 1] = [None];
        for d in S::DEFS {
            base.push(slots.len());
            let unds: Vec<Option<&str>> = match d.scope {
                Scope::Global => globals.to_vec(),
                Scope::PerUnderlying => underlyings.iter().map(|u| Some(*u)).collect(),
            };
            let values: Vec<Option<&str>> = match d.by {
                None => vec![None],
                Some(b) => b.values.iter().map(|v| Some(*v)).collect(),
            };
            for u in &unds {
                for v in &values {
                    // Longer than LABEL_LEN (a very long symbol): cut in the segment, and
                    // readers keep the pairs that are there.
                    let label = d.label(*u, *v);
                    slots.push(alloc(RecordMeta {
                        label: &label,
                        kind: d.kind.word(),
                        unit: d.unit,
                        help: d.help,
                    }));
                }
            }
        }
        CounterSet {
            slots: slots.into_boxed_slice(),
            base: base.into_boxed_slice(),
            underlyings: underlyings.len(),
            _schema: PhantomData,
        }
    }

    /// A set not backed by shared memory (tests, in-process use).
    pub fn detached(underlyings: &[&str]) -> Self {
        Self::build(underlyings, &mut |_| Counter::detached())
    }

    /// Underlyings this set was registered for.
    pub fn underlyings(&self) -> usize {
        self.underlyings
    }

    /// The slot of instance (`underlying`, `by`) of `id`. `underlying` is 0 for a global
    /// counter, `by` 0 for one without a label set.
    ///
    /// # Panics
    /// If `underlying` or `by` is out of range (a programming error, caught by the tests of
    /// each process; in release a wrong index past the set panics, never writes elsewhere).
    #[inline]
    fn slot(&self, id: S, underlying: usize, by: usize) -> &Counter {
        let d = id.def();
        let width = d.width();
        debug_assert!(by < width, "{}: label index {by} of {width}", d.name);
        debug_assert!(
            underlying == 0 || d.scope == Scope::PerUnderlying,
            "{} is global",
            d.name
        );
        &self.slots[self.base[id.index()] + underlying * width + by]
    }

    /// A handle on counter instance (`underlying`, `by`) of `id`, for code that keeps its
    /// handles in fields (startup; the handle is the same word the set stores into).
    pub fn counter_at(&self, id: S, underlying: usize, by: usize) -> Counter {
        self.slot(id, underlying, by).clone()
    }

    /// A handle on gauge instance (`underlying`, `by`) of `id`.
    pub fn gauge_at(&self, id: S, underlying: usize, by: usize) -> Gauge {
        debug_assert!(
            id.def().kind == CounterKind::Gauge,
            "{} is not a gauge",
            id.def().name
        );
        Gauge::from_word(self.slot(id, underlying, by).clone())
    }

    /// Adds `n` to global counter `id`.
    #[inline]
    pub fn add(&self, id: S, n: u64) {
        self.slot(id, 0, 0).add(n);
    }

    /// Sets global counter `id`.
    #[inline]
    pub fn set(&self, id: S, v: u64) {
        self.slot(id, 0, 0).set(v);
    }

    /// Sets global gauge `id`.
    #[inline]
    pub fn set_f64(&self, id: S, v: f64) {
        self.slot(id, 0, 0).set(v.to_bits());
    }

    /// Sets counter instance (`underlying`, `by`) of `id`.
    #[inline]
    pub fn set_at(&self, id: S, underlying: usize, by: usize, v: u64) {
        self.slot(id, underlying, by).set(v);
    }

    /// Sets gauge instance (`underlying`, `by`) of `id`.
    #[inline]
    pub fn set_f64_at(&self, id: S, underlying: usize, by: usize, v: f64) {
        self.slot(id, underlying, by).set(v.to_bits());
    }

    /// Current raw word of instance (`underlying`, `by`) of `id` (a gauge's f64 bits).
    #[inline]
    pub fn get_at(&self, id: S, underlying: usize, by: usize) -> u64 {
        self.slot(id, underlying, by).get()
    }

    /// Current value of global counter `id`.
    #[inline]
    pub fn get(&self, id: S) -> u64 {
        self.get_at(id, 0, 0)
    }

    /// Current value of global gauge `id`.
    #[inline]
    pub fn get_f64(&self, id: S) -> f64 {
        f64::from_bits(self.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_label_undoes_label_for_every_shape_and_escape() {
        const REASONS: [&str; 3] = ["plain", "with \"quotes\"", "back\\slash\nnewline,={}"];
        let d = CounterDef::counter("rejects", "orders", "h")
            .per_underlying()
            .by("reason", &REASONS);
        for und in [None, Some("BTC"), Some("we\"ird,\\sym}")] {
            for v in REASONS.iter().copied().map(Some).chain([None]) {
                let label = d.label(und, v);
                let (name, pairs) = parse_label(&label).unwrap_or_else(|| panic!("{label}"));
                assert_eq!(name, "rejects", "{label}");
                let want: Vec<(&str, String)> = und
                    .map(|u| ("underlying", u.to_string()))
                    .into_iter()
                    .chain(v.map(|v| ("reason", v.to_string())))
                    .collect();
                assert_eq!(pairs, want, "{label}");
            }
        }
    }

    #[test]
    fn parse_label_refuses_what_label_cannot_make() {
        for bad in [
            r#"x{k="v""#,
            r#"x{k="v"}junk"#,
            r#"x{k=v}"#,
            r#"x{k="v",}"#,
            r#"x{k="v\"#,
            "x}",
        ] {
            assert_eq!(parse_label(bad), None, "{bad}");
        }
    }
}
