//! `order-gateway`: parses the command line and runs [`order_gateway::run::run`].
#![forbid(unsafe_code)]

use clap::Parser;
use order_gateway::config::Cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cfg = match cli.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("order-gateway: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.print_config {
        println!("{cfg:#?}");
        return std::process::ExitCode::SUCCESS;
    }
    match order_gateway::run::run(&cfg) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("order-gateway: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
