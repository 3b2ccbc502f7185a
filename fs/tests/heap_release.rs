//! `heap::release_free_memory` gives freed heap back to the OS. Its own test binary, so no
//! other test's allocations move this process's resident set while it is measured.

/// Resident set of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_freed_among_live_blocks_leaves_the_resident_set_only_when_released() {
    const MIB: u64 = 1024;
    let start = rss_kib();
    // Many small blocks, as a manifest is made of, with one in 100 kept alive: the live
    // ones pin the arena, so the allocator cannot shrink it on its own as blocks are freed.
    let blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 200]).collect();
    let filled = rss_kib();
    assert!(
        filled - start > 40 * MIB,
        "allocating 200,000 x 200 B grew RSS by only {} KiB",
        filled - start
    );
    let kept: Vec<Vec<u8>> = blocks.into_iter().step_by(100).collect();
    let freed = rss_kib();
    assert!(
        filled - freed < 10 * MIB,
        "the premise: glibc keeps freed heap without a trim (RSS {filled} -> {freed} KiB)"
    );
    savesync_fs::heap::release_free_memory();
    let released = rss_kib();
    assert!(
        freed - released > 25 * MIB,
        "the release returned only {} KiB of ~45 MiB freed (RSS {freed} -> {released} KiB)",
        freed.saturating_sub(released)
    );
    assert_eq!(kept.len(), 2000, "the live blocks stay");
}
