//! The config fuzz harness: generated TOML files mixing valid values, edges (NaN, inf, a
//! negative number, 0, 2^63 - 1, `..`) and unknown keys go through a config parser, which must
//! never panic, and whose every refusal names a key; refusals are tallied by key and printed
//! (`-- --nocapture`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

/// A TOML value for a config key: mostly plausible (a float in 0.01..100, an integer in
/// `1..int_below`), sometimes hostile: NaN, inf, -1.0, 0, 2^63 - 1, the string `..`, or one of
/// `extra` (the edges of the config's own keys, as TOML text).
pub fn value(int_below: u64, extra: &'static [&'static str]) -> impl Strategy<Value = String> {
    const EDGES: [&str; 6] = ["nan", "inf", "-1.0", "0", "9223372036854775807", "\"..\""];
    let edges: Vec<String> = EDGES.iter().chain(extra).map(|s| s.to_string()).collect();
    prop_oneof![
        5 => (0.01f64..100.0).prop_map(|v| format!("{v:?}")),
        3 => (1u64..int_below).prop_map(|v| v.to_string()),
        1 => proptest::sample::select(edges),
    ]
}

/// Up to three `key = value` lines, each key at most once, keys from `keys`.
pub fn key_lines<V>(keys: &'static [&'static str], value: V) -> impl Strategy<Value = String>
where
    V: Strategy<Value = String>,
{
    proptest::collection::vec((0..keys.len(), value), 0..4).prop_map(move |kv| {
        let mut seen = HashSet::new();
        kv.into_iter()
            .filter(|(k, _)| seen.insert(*k))
            .map(|(k, v)| format!("{} = {v}\n", keys[k]))
            .collect()
    })
}

/// What the parser under test did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Refused, naming this key (the check has already asserted the message's form).
    Refused {
        /// The key the refusal names.
        key: String,
    },
    /// Accepted (the check has already asserted what an accepted config guarantees).
    Accepted,
}

/// The contract of every refusal: one line, starting with `head` (which names the file).
/// Returns what follows `head`, to tally the refusal by key; an error when the message of the
/// refusal of `text` breaks the contract.
fn refusal_rest<'a>(text: &str, msg: &'a str, head: &str) -> Result<&'a str, TestCaseError> {
    prop_assert!(!msg.contains('\n'), "{text:?}: {msg}");
    prop_assert!(msg.starts_with(head), "{msg}");
    Ok(&msg[head.len()..])
}

/// What the parse of `text` means for the tally, after checking it: a refusal must keep the
/// contract (one line, starting with `head`) and is tallied under `key(error, rest)`; an
/// accepted config must pass `accept`.
///
/// # Errors
/// A check failed.
pub fn judge<C, E: std::fmt::Display>(
    text: &str,
    parsed: Result<C, E>,
    head: &str,
    key: impl FnOnce(&E, &str) -> Result<String, TestCaseError>,
    accept: impl FnOnce(C) -> Result<(), TestCaseError>,
) -> Result<Outcome, TestCaseError> {
    match parsed {
        Err(e) => {
            let msg = e.to_string();
            let rest = refusal_rest(text, &msg, head)?;
            Ok(Outcome::Refused {
                key: key(&e, rest)?,
            })
        }
        Ok(c) => accept(c).map(|()| Outcome::Accepted),
    }
}

/// Runs `cases` files of `files` through `check`, which parses one file, asserts what its
/// outcome promises, and says which it was. Prints the tally as `NAME config fuzz: ...`.
///
/// # Panics
/// A check failed (proptest shrinks it first), or no file was accepted, or none refused (the
/// generator would then not test what it claims to).
pub fn run<S, F>(name: &str, cases: u32, files: S, check: F)
where
    S: Strategy<Value = String>,
    F: Fn(&str) -> Result<Outcome, TestCaseError>,
{
    let mut runner = TestRunner::new(RunnerConfig::with_cases(cases));
    let refused = RefCell::new(BTreeMap::<String, u64>::new());
    let accepted = Cell::new(0u64);
    runner
        .run(&files, |text| {
            match check(&text)? {
                Outcome::Refused { key } => *refused.borrow_mut().entry(key).or_default() += 1,
                Outcome::Accepted => accepted.set(accepted.get() + 1),
            }
            Ok(())
        })
        .unwrap();
    println!(
        "{name} config fuzz: {cases} cases, {} accepted, refused by key {:?}",
        accepted.get(),
        refused.borrow()
    );
    assert!(
        accepted.get() > 0,
        "{name}: no generated config was accepted"
    );
    assert!(
        !refused.borrow().is_empty(),
        "{name}: no generated config was refused"
    );
}
