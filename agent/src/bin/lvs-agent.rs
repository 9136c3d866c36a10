//! `lvs-agent`: see [`lvs_agent::run`].
use clap::Parser;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    lvs_agent::run::init_logging();
    match lvs_agent::run::run(lvs_agent::run::Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lvs-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
