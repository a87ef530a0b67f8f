//! The process's allocator: mimalloc instead of glibc's malloc.
//!
//! Pipelines here allocate on one thread and free on another all the time (rows parsed on the
//! pool and freed after writing, Arrow buffers built on the in-order thread and freed after
//! encoding). glibc then takes the owning arena's lock on every such free: on two cores
//! `njp ingest` spent ≈ 5 % of its time in futex waits and ≈ 17 % in malloc and free. mimalloc's
//! per-thread heaps take cross-thread frees without a lock. Measured (`bench/RESULTS.md`,
//! ingest, session 9): `njp ingest` −17 % wall time, `njp tok train` −2 %; a CPU `njp train`
//! step 2–4 % slower (with [`keep_freed_memory`]), peak RSS higher by 60–160 MiB.
//!
//! mimalloc is built with `no_thp`: it does not ask for transparent huge pages on its 1 GiB
//! arenas. With them a page fault could stall while the kernel compacted memory for a 2 MiB
//! page, and the same ingest took anywhere from 0.9 to 1.3 s.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits` in mimalloc.h's `mi_option_e` (the same index in v2 and v3).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;
/// `mi_option_destroy_on_exit` (the same index in v2 and v3).
const MI_OPTION_DESTROY_ON_EXIT: libmimalloc_sys::mi_option_t = 22;

/// Leaves the heap as it is when the process exits. By default mimalloc's exit handler collects
/// every heap and gives the freed memory back to the kernel page range by page range: ≈ 450
/// `madvise` calls, each a TLB shootdown, on the main thread after the work is done (≈ 13 ms
/// at the end of a 0.9 s ingest). The kernel takes the whole address space back at exit anyway.
/// A value above 1 makes the handler return at once (`_mi_auto_process_done` in init.c).
pub(crate) fn skip_cleanup_at_exit() {
    // SAFETY: as in `keep_freed_memory`: a valid option index and value, settable at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_DESTROY_ON_EXIT, 2);
    }
}

/// Keeps freed memory mapped for reuse: mimalloc then *resets* memory it purges (`MADV_FREE`:
/// the kernel takes the pages back only when it needs them) instead of *decommitting* it.
///
/// A CPU training step frees and allocates hundreds of MiB of tensors (the `[B·T, vocab]`
/// logits and their gradients). Decommitted a second after each free, they were faulted in and
/// zeroed again at every step: 1.6 M page faults in 20 `tiny` steps and +13 % step time. An
/// explicit `MIMALLOC_PURGE_DECOMMITS` in the environment wins.
pub(crate) fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table; every option index
    // below `_mi_option_last` and every value are valid, at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0);
    }
}
