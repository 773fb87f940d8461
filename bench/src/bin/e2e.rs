//! `e2e`: the end-to-end tick-to-order benchmark (issue 10). Thin main: parse, run, exit code.
//! See `bench/src/e2e/mod.rs` and `scripts/bench.sh`.
#![forbid(unsafe_code)]

#[path = "../e2e/mod.rs"]
mod e2e;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = e2e::Args::parse();
    match e2e::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
