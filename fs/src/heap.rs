//! Giving freed heap back to the operating system after the device program's big
//! transient phases: loading the inode table at mount start and building and answering a
//! negotiation manifest. Both allocate in proportion to the library (about a kilobyte per
//! save at their peak) and free almost all of it again, but glibc's allocator keeps freed
//! memory in its arenas: without a trim, a mount with 20,000 saves kept 16 MiB it no longer
//! used for the rest of its life (of 27 MiB its first negotiation added). musl's allocator
//! returns freed pages on its own, so there this does nothing.

/// Blocks at least this large are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Set the allocator up for a long-running daemon (call first thing, before any thread):
/// - a fixed mmap threshold, so big buffers (a manifest's JSON, a library's record list)
///   return to the OS the moment they are freed. glibc otherwise raises the threshold each
///   time such a buffer is freed, and later big buffers come from the heap and stay;
/// - one arena per CPU instead of glibc's eight: the daemon's threads (FUSE, the async
///   runtime, its blocking pool) each got an arena of their own, every one holding some
///   freed memory. With 100,000 saves on 2 CPUs this kept the resident set from swinging
///   between 45 and 51 MiB while idle.
pub fn tune_for_daemon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let arenas = libc::c_int::try_from(arenas).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Return free heap pages to the OS (`malloc_trim(0)` on glibc). Costs a few milliseconds
/// with a large heap; call it after a phase that freed a lot, not per request.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
    // preconditions and is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
