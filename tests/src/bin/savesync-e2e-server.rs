//! The `savesync-server` CLI, built inside the test package so tests can run it as a process.

fn main() -> std::process::ExitCode {
    savesync_server::cli_main()
}
