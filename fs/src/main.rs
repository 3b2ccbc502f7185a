//! The `savesync` binary: everything lives in the library (`savesync_fs::cli_main`).
fn main() -> std::process::ExitCode {
    savesync_fs::cli_main()
}
