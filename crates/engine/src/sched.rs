//! How the engine's own threads ask the kernel to schedule them.
//!
//! The writer and log threads sleep until work arrives and then hold up every waiting batch
//! until they run. On a busy machine the kernel's default slice (about 0.75–3 ms under EEVDF)
//! lets whatever thread is running keep the core, so a woken writer waited hundreds of
//! microseconds: measured with probes on a shared 2-core machine under `bench --http --scenario
//! charges`, a batch waited 150–400 µs for the writer to pick it up and the commit another
//! 200 µs for the log thread. Asking for a short slice (Linux 6.12 and later: `sched_runtime`
//! for a normal task, no privilege needed) lets a woken engine thread preempt sooner; the same
//! bench went from 22,200–25,900 to 26,700–27,700 charges/s. Older kernels ignore the request.

/// The slice the writer and log threads ask for.
pub const ENGINE_THREAD_SLICE_NS: u64 = 100_000;

/// Asks for a short scheduler slice for the calling thread, keeping its nice value. Best
/// effort: a kernel that refuses it leaves the thread as it was.
pub fn request_short_slice(slice_ns: u64) {
    #[cfg(target_os = "linux")]
    linux::request_short_slice(slice_ns);
    #[cfg(not(target_os = "linux"))]
    let _ = slice_ns;
}

#[cfg(target_os = "linux")]
mod linux {
    /// `struct sched_attr` of sched_setattr(2) (the kernel's stable ABI, version 1).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
        util_min: u32,
        util_max: u32,
    }

    pub fn request_short_slice(slice_ns: u64) {
        // sched_setattr sets the nice value too, so the thread's own is passed on
        // (getpriority of the calling thread cannot fail: `which` is valid, `who` is 0).
        // SAFETY: getpriority reads the calling thread's nice value; no memory is passed.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            flags: 0,
            nice,
            priority: 0,
            runtime: slice_ns,
            deadline: 0,
            period: 0,
            util_min: 0,
            util_max: 0,
        };
        // SAFETY: sched_setattr reads `attr` (fully initialized, `size` bytes) for the calling
        // thread (pid 0) and keeps no pointer to it.
        let rc =
            unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "the kernel refused a short scheduler slice; the thread keeps the default"
            );
        }
    }
}
