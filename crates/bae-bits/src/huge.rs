//! Large zeroed outputs on transparent huge pages.
//!
//! A `cols x cols` count matrix is hundreds of megabytes (256 MiB at d' = 8192), handed to the
//! caller fresh. On 4 KiB pages its first writes take one page fault each (65,536 at 256 MiB) and
//! its scattered block writes miss the TLB; asking Linux for huge pages before the first write
//! (`madvise(MADV_HUGEPAGE)`, honoured where THP is `always` or `madvise`) removes most of both.

/// Below this size the buffer may come from the heap's touched pages; advice would not help.
const MIN_BYTES: usize = 8 << 20;

/// `len` zeros, on huge pages where the OS gives them (see the module docs).
pub(crate) fn zeroed(len: usize) -> Vec<u32> {
    let v = vec![0u32; len];
    advise_huge_pages(&v);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(v: &[u32]) {
    const PAGE: usize = 4096;
    let bytes = std::mem::size_of_val(v);
    if bytes < MIN_BYTES {
        return;
    }
    let start = (v.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (v.as_ptr() as usize + bytes) / PAGE * PAGE;
    // SAFETY: the range lies inside `v`'s allocation and is page aligned; the advice changes
    // only how the kernel backs the pages, not their contents (zeros, not yet touched). A
    // failure (THP off, old kernel) leaves the 4 KiB pages: nothing to handle.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_: &[u32]) {}
