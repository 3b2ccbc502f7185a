//! The `savesync-server` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    savesync_server::cli_main()
}
