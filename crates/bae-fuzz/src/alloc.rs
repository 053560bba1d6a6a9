//! A counting global allocator with a cap: while an execution is armed on a thread, any single
//! allocation above the limit, or more live bytes than the limit, is reported as a crash (the
//! input is saved and the process exits) before the memory is requested from the system.
//!
//! Install it in a binary with `#[global_allocator] static A: bae_fuzz::alloc::CapAlloc = CapAlloc;`.
//! Without it, [`arm`]/[`disarm`] do nothing and report zeros.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct CapAlloc;

static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// What one armed execution allocated on its thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Largest single allocation (bytes).
    pub largest: usize,
    /// Most bytes live at once, counted from `arm` (allocations minus frees on this thread).
    pub peak: usize,
}

/// Whether `CapAlloc` is the global allocator of this process.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// The limit for an input of `len` bytes: 1 GiB or 64 x len + 64 MiB, whichever is larger.
pub fn limit_for(len: usize) -> usize {
    (1usize << 30).max(len.saturating_mul(64).saturating_add(64 << 20))
}

/// Starts counting on this thread with `limit` bytes.
pub fn arm(limit: usize) {
    let _ = LIVE.try_with(|c| c.set(0));
    let _ = PEAK.try_with(|c| c.set(0));
    let _ = LARGEST.try_with(|c| c.set(0));
    let _ = LIMIT.try_with(|c| c.set(limit));
    let _ = ARMED.try_with(|c| c.set(true));
}

/// Stops counting on this thread and returns what was seen.
pub fn disarm() -> AllocStats {
    let _ = ARMED.try_with(|c| c.set(false));
    let _ = LIMIT.try_with(|c| c.set(usize::MAX));
    AllocStats {
        largest: LARGEST.try_with(Cell::get).unwrap_or(0),
        peak: PEAK.try_with(Cell::get).unwrap_or(0),
    }
}

fn armed() -> bool {
    ARMED.try_with(Cell::get).unwrap_or(false)
}

#[cold]
fn violation(what: &'static str, bytes: usize, limit: usize) -> ! {
    disarm();
    crate::runner::alloc_violation(what, bytes, limit)
}

fn on_alloc(size: usize) {
    if !armed() {
        return;
    }
    let limit = LIMIT.try_with(Cell::get).unwrap_or(usize::MAX);
    let live = LIVE.try_with(|c| {
        let v = c.get().saturating_add(size);
        c.set(v);
        v
    });
    let live = live.unwrap_or(0);
    let _ = PEAK.try_with(|c| c.set(c.get().max(live)));
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    if size > limit {
        violation("a single allocation", size, limit);
    }
    if live > limit {
        violation("the bytes live at once", live, limit);
    }
}

fn on_free(size: usize) {
    if armed() {
        let _ = LIVE.try_with(|c| c.set(c.get().saturating_sub(size)));
    }
}

// SAFETY: every call is forwarded to `System` with the caller's layout; the bookkeeping only
// touches const-initialised thread-locals without destructors (no allocation, no re-entrance
// except through the violation path, which disarms first and never returns).
unsafe impl GlobalAlloc for CapAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
        on_alloc(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_free(layout.size());
        on_alloc(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn limit_formula() {
        assert_eq!(super::limit_for(0), 1 << 30);
        assert_eq!(super::limit_for(100 << 20), (6400 << 20) + (64 << 20));
        assert_eq!(super::limit_for(usize::MAX), usize::MAX);
    }
}
