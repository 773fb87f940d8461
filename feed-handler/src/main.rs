//! `feed-handler`: publishes normalized market data into shared memory. All logic lives in the
//! library ([`feed_handler::cli::main`]); see `feed-handler --help`.
#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    feed_handler::cli::main()
}
