//! `lvsctl`: the controller CLI. All logic lives in the libraries.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = lvsctl::cli::Cli::parse();
    lvsctl::exec::run(&cli, &mut std::io::stdout().lock(), &mut std::io::stderr().lock())
}
