//! `lvsctl`: the controller CLI. All logic lives in the library.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = lvs_controller::cli::Cli::parse();
    lvs_controller::cli::run(&cli, &mut std::io::stdout().lock(), &mut std::io::stderr().lock())
}
