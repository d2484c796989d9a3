//! Removing the temporary files when the run is interrupted (SIGINT, SIGTERM, SIGHUP): the
//! handler unlinks them and exits with status 128 + signal. Only async-signal-safe calls
//! (`unlink`, `_exit`) on paths prepared beforehand. Declared directly against the C library
//! that std already links, to avoid a dependency.

#[cfg(unix)]
pub(crate) use unix::{forget, remove_on_signal};

#[cfg(not(unix))]
pub(crate) use other::{forget, remove_on_signal};

#[cfg(unix)]
mod unix {
    use std::ffi::{c_char, c_int, CString};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicPtr, Ordering};
    use std::sync::Once;

    extern "C" {
        fn signal(signum: c_int, handler: usize) -> usize;
        fn unlink(path: *const c_char) -> c_int;
        fn _exit(status: c_int) -> !;
    }

    const SIGHUP: c_int = 1;
    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;
    const SIG_IGN: usize = 1;

    static PATHS: [AtomicPtr<c_char>; 4] = [
        AtomicPtr::new(std::ptr::null_mut()),
        AtomicPtr::new(std::ptr::null_mut()),
        AtomicPtr::new(std::ptr::null_mut()),
        AtomicPtr::new(std::ptr::null_mut()),
    ];
    static INSTALL: Once = Once::new();

    extern "C" fn handler(sig: c_int) {
        for p in &PATHS {
            let ptr = p.load(Ordering::SeqCst);
            if !ptr.is_null() {
                // SAFETY: `ptr` is a leaked, NUL-terminated CString (see `remove_on_signal`)
                unsafe { unlink(ptr) };
            }
        }
        // SAFETY: `_exit` is async-signal-safe and does not return
        unsafe { _exit(128 + sig) }
    }

    /// Remove `path` if the process is interrupted; returns the slot to `forget` it by.
    pub fn remove_on_signal(path: &Path) -> Option<usize> {
        let c = CString::new(path.as_os_str().as_bytes()).ok()?;
        INSTALL.call_once(|| {
            let h = handler as extern "C" fn(c_int) as usize;
            // SAFETY: installing a handler that only calls async-signal-safe functions
            // (a signal that was ignored when we started, as under nohup, stays ignored)
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                unsafe {
                    if signal(sig, h) == SIG_IGN {
                        signal(sig, SIG_IGN);
                    }
                }
            }
        });
        let raw = c.into_raw();
        for (i, p) in PATHS.iter().enumerate() {
            if p.compare_exchange(std::ptr::null_mut(), raw, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Some(i);
            }
        }
        // SAFETY: `raw` came from `into_raw` above and was not stored
        drop(unsafe { CString::from_raw(raw) });
        None
    }

    /// Stop removing the path of `slot` on a signal. The string is leaked on purpose: a
    /// handler running on another thread may still be reading it.
    pub fn forget(slot: usize) {
        PATHS[slot].store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

/// Elsewhere nothing is removed on a signal.
#[cfg(not(unix))]
mod other {
    pub fn remove_on_signal(_path: &std::path::Path) -> Option<usize> {
        None
    }
    pub fn forget(_slot: usize) {}
}
