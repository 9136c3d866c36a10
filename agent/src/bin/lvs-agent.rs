//! `lvs-agent`: see [`lvs_agent::run`].
use clap::Parser;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = lvs_agent::run::Args::parse();
    if args.man {
        return match lvs_agent::run::man_page(&mut std::io::stdout().lock()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(_) => std::process::ExitCode::FAILURE,
        };
    }
    lvs_agent::run::init_logging();
    match lvs_agent::run::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lvs-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
