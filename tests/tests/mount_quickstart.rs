//! The README path with real processes only: `savesync-server serve` on a free loopback
//! port, `savesync-server pair --quiet` for codes, `savesync pair` + `savesync mount` on
//! two devices, a save written on one read on the other, and SIGTERM ends the server with
//! status 0.

use savesync_tests::{Device, ServerProcess, require_fuse, save_bytes, wait_for_bytes};
use std::time::Duration;

#[test]
fn the_server_binary_with_cli_pairing_syncs_a_save_between_two_mounted_devices() {
    if !require_fuse() {
        return;
    }
    let mut server = ServerProcess::start();
    let mut a = Device::pair_with_code(server.url(), &server.pairing_code("quick"), "deck-a");
    let mut b = Device::pair_with_code(server.url(), &server.pairing_code("quick"), "pc-b");
    a.mount();
    b.mount();
    std::fs::create_dir_all(a.path("snes")).unwrap();
    let bytes = save_bytes(900, 8192);
    std::fs::write(a.path("snes/Earthbound.srm"), &bytes).unwrap();
    wait_for_bytes(&b.path("snes/Earthbound.srm"), &bytes, Duration::from_secs(10));
    a.unmount();
    b.unmount();
    let status = server.stop();
    assert!(status.success(), "savesync-server exits 0 on SIGTERM, got {status}");
}
