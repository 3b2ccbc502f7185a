//! The `savesync` mount CLI, built inside the test package so tests can run it as a process
//! (each device its own `pair` / `mount --foreground` / `status` invocations).

fn main() -> std::process::ExitCode {
    savesync_fs::cli_main()
}
