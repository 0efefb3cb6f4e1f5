//! The `svsync` binary: parses the command line, runs the library, prints, exits.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
