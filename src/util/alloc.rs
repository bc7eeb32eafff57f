//! alloc — the program's memory allocator: small blocks from free lists by
//! size class, big ones straight from the kernel.
//!
//! The router build links zig's C library, whose `malloc` is a
//! multi-threaded allocator of about 9 KB of MIPS code (it counts the
//! CPUs at start-up). masqmail is one thread per process (the daemon forks
//! its workers), and what it allocates is small strings and vectors plus a
//! few buffers: this allocator is a few hundred bytes and serves both Rust
//! (`#[global_allocator]` in main.rs) and, in the static musl build, the C
//! library's own `malloc`, `calloc`, `realloc` and `free` (setenv,
//! opendir, the time zone), so zig's allocator is not linked at all.
//!
//! - **Small** (≤ 2 KiB, alignment ≤ 16): eight power-of-two classes,
//!   16 B to 2 KiB. A freed block goes on
//!   its class's free list and is handed out again; new blocks are cut
//!   from 64 KiB regions mapped from the kernel. The kernel backs a page
//!   only once it is touched, so an idle process holds no more than it
//!   used. Freed small blocks are kept for reuse, not given back.
//! - **Big** (more, or alignment over 16): an anonymous mapping of its own,
//!   unmapped when freed; growing one is `mremap`, which moves pages
//!   instead of copying bytes.
//!
//! A spin lock guards the free lists, so a thread (the tests start some)
//! is safe; no signal handler allocates (signals arrive through signalfd).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, Ordering};

/// Blocks of up to this size come from the free lists.
const SMALL_MAX: usize = 2048;
/// Smallest class: 16 bytes, the alignment every small block has.
const MIN_SHIFT: u32 = 4;
const CLASSES: usize = 8; // 16, 32, …, 2048
/// Bytes mapped at a time for small blocks.
const REGION: usize = 64 * 1024;

/// The allocator (zero-sized; its state is in `STATE`).
pub struct Heap;

struct State {
    /// Head of each class's free list; a free block's first word is the
    /// next one.
    free: [*mut u8; CLASSES],
    /// The unused rest of the current region.
    next: *mut u8,
    end: *mut u8,
}

struct Locked(core::cell::UnsafeCell<State>);
// SAFETY: every access to the cell goes through `with_state`, which holds
// the spin lock.
unsafe impl Sync for Locked {}

static STATE: Locked = Locked(core::cell::UnsafeCell::new(State {
    free: [null_mut(); CLASSES],
    next: null_mut(),
    end: null_mut(),
}));
static LOCK: AtomicBool = AtomicBool::new(false);

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    while LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: the lock is held, so this is the only reference.
    let r = f(unsafe { &mut *STATE.0.get() });
    LOCK.store(false, Ordering::Release);
    r
}

/// The class of a small block of `size` bytes, or None for a big one.
fn class(size: usize, align: usize) -> Option<usize> {
    if size > SMALL_MAX || align > 1 << MIN_SHIFT {
        return None;
    }
    let bits = usize::BITS - (size.max(1) - 1).leading_zeros();
    Some(bits.saturating_sub(MIN_SHIFT) as usize)
}

fn map(len: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        null_mut()
    } else {
        p.cast()
    }
}

fn small_alloc(c: usize) -> *mut u8 {
    let size = 1usize << (c as u32 + MIN_SHIFT);
    with_state(|s| {
        let head = s.free[c];
        if !head.is_null() {
            // SAFETY: a free block holds the next pointer in its first word.
            s.free[c] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        if (s.end as usize) - (s.next as usize) < size {
            let r = map(REGION);
            if r.is_null() {
                return r;
            }
            s.next = r;
            // SAFETY: within (one past) the region just mapped.
            s.end = unsafe { r.add(REGION) };
        }
        let p = s.next;
        // SAFETY: size bytes are left before `end`.
        s.next = unsafe { p.add(size) };
        p
    })
}

fn small_free(p: *mut u8, c: usize) {
    with_state(|s| {
        // SAFETY: the block is at least 16 bytes, aligned, and now ours.
        unsafe { p.cast::<*mut u8>().write(s.free[c]) };
        s.free[c] = p;
    })
}

// SAFETY: blocks never overlap (a block is on a free list or handed out,
// never both), meet the layout's size and alignment, and big blocks are
// whole mappings of at least the size asked for.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        match class(l.size(), l.align()) {
            Some(c) => small_alloc(c),
            // Mappings are page-aligned: enough for any alignment Rust
            // types here ask for (up to 4 KiB).
            None if l.align() <= 4096 => map(l.size()),
            None => null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = self.alloc(l);
        // Fresh mappings are zero already; reused small blocks are not.
        if !p.is_null() && class(l.size(), l.align()).is_some() {
            ptr::write_bytes(p, 0, l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        match class(l.size(), l.align()) {
            Some(c) => small_free(p, c),
            None => {
                libc::munmap(p.cast(), l.size());
            }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let old = class(l.size(), l.align());
        let to = class(new, l.align());
        if old.is_some() && old == to {
            return p;
        }
        if old.is_none() && to.is_none() {
            let q = libc::mremap(p.cast(), l.size(), new, libc::MREMAP_MAYMOVE);
            return if q == libc::MAP_FAILED {
                null_mut()
            } else {
                q.cast()
            };
        }
        // SAFETY (caller): `new` with the old alignment is a valid layout.
        let q = self.alloc(Layout::from_size_align_unchecked(new, l.align()));
        if !q.is_null() {
            ptr::copy_nonoverlapping(p, q, l.size().min(new));
            self.dealloc(p, l);
        }
        q
    }
}

/// The C library's allocator, in the static musl build (see the module
/// text): each block starts with a 16-byte header holding its size, as
/// `free` is not told the size.
pub mod c {
    use super::Heap;
    use core::alloc::{GlobalAlloc, Layout};
    use core::ffi::c_void;
    use core::ptr::null_mut;

    const HEAD: usize = 16;

    fn layout(n: usize) -> Option<Layout> {
        Layout::from_size_align(n.checked_add(HEAD)?, HEAD).ok()
    }

    /// A block for `n` bytes, zeroed or not, with its size in the header.
    /// Fresh mappings are zero already: `alloc_zeroed` clears only reused
    /// small blocks.
    unsafe fn block(n: usize, zero: bool) -> *mut c_void {
        let Some(l) = layout(n) else {
            return null_mut();
        };
        let p = if zero {
            Heap.alloc_zeroed(l)
        } else {
            Heap.alloc(l)
        };
        with_head(p, n)
    }

    /// The caller's pointer to block `p` of `n` bytes, its size noted in
    /// the header; null for null.
    unsafe fn with_head(p: *mut u8, n: usize) -> *mut c_void {
        if p.is_null() {
            return null_mut();
        }
        p.cast::<usize>().write(n);
        p.add(HEAD).cast()
    }

    /// # Safety
    /// C's `malloc`.
    #[cfg_attr(all(target_env = "musl", not(test)), no_mangle)]
    pub unsafe extern "C" fn malloc(n: usize) -> *mut c_void {
        block(n, false)
    }

    /// # Safety
    /// C's `calloc`.
    #[cfg_attr(all(target_env = "musl", not(test)), no_mangle)]
    pub unsafe extern "C" fn calloc(k: usize, n: usize) -> *mut c_void {
        match k.checked_mul(n) {
            Some(t) => block(t, true),
            None => null_mut(),
        }
    }

    /// # Safety
    /// C's `free`.
    #[cfg_attr(all(target_env = "musl", not(test)), no_mangle)]
    pub unsafe extern "C" fn free(p: *mut c_void) {
        if p.is_null() {
            return;
        }
        let b = p.cast::<u8>().sub(HEAD);
        let n = b.cast::<usize>().read();
        Heap.dealloc(b, Layout::from_size_align_unchecked(n + HEAD, HEAD));
    }

    /// # Safety
    /// C's `realloc`.
    #[cfg_attr(all(target_env = "musl", not(test)), no_mangle)]
    pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
        if p.is_null() {
            return malloc(n);
        }
        let Some(l) = layout(n) else {
            return null_mut();
        };
        let b = p.cast::<u8>().sub(HEAD);
        let old = b.cast::<usize>().read();
        let q = Heap.realloc(
            b,
            Layout::from_size_align_unchecked(old + HEAD, HEAD),
            l.size(),
        );
        with_head(q, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests share the one heap: those that expect a freed block back
    /// take turns.
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn classes() {
        assert_eq!(class(0, 1), Some(0));
        assert_eq!(class(1, 1), Some(0));
        assert_eq!(class(16, 8), Some(0));
        assert_eq!(class(17, 8), Some(1));
        assert_eq!(class(2048, 16), Some(7));
        assert_eq!(class(2049, 1), None);
        assert_eq!(class(8, 32), None);
    }

    /// Blocks of every class and some big ones: distinct, aligned,
    /// writable, reused after free, their bytes kept across realloc.
    #[test]
    fn blocks() {
        let _turn = TURN.lock().unwrap();
        let mut live = Vec::new();
        for size in [1usize, 15, 16, 17, 100, 1000, 2048, 2049, 5000, 100_000] {
            for align in [1usize, 8, 16, 64] {
                let l = Layout::from_size_align(size, align).unwrap();
                let p = unsafe { Heap.alloc(l) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "{size} {align}");
                unsafe { p.write_bytes(size as u8, size) };
                live.push((p, l));
            }
        }
        live.sort_by_key(|(p, _)| *p as usize);
        for w in live.windows(2) {
            assert!(w[0].0 as usize + w[0].1.size() <= w[1].0 as usize);
        }
        for (p, l) in &live {
            let s = unsafe { std::slice::from_raw_parts(*p, l.size()) };
            assert!(s.iter().all(|b| *b == l.size() as u8));
        }
        // Grow each through every kind of move, then free.
        for (p, l) in live {
            let q = unsafe { Heap.realloc(p, l, l.size() * 3 + 1) };
            assert!(!q.is_null());
            let s = unsafe { std::slice::from_raw_parts(q, l.size()) };
            assert!(s.iter().all(|b| *b == l.size() as u8));
            let l3 = Layout::from_size_align(l.size() * 3 + 1, l.align()).unwrap();
            unsafe { Heap.dealloc(q, l3) };
        }
        // A freed small block is handed out again.
        let l = Layout::from_size_align(200, 8).unwrap();
        let p = unsafe { Heap.alloc(l) };
        unsafe { Heap.dealloc(p, l) };
        let z = unsafe { Heap.alloc_zeroed(l) };
        assert_eq!(p, z);
        assert!(unsafe { std::slice::from_raw_parts(z, 200) }
            .iter()
            .all(|b| *b == 0));
        unsafe { Heap.dealloc(z, l) };
    }

    #[test]
    fn c_interface() {
        let _turn = TURN.lock().unwrap();
        unsafe {
            let p = c::malloc(10).cast::<u8>();
            assert!(!p.is_null() && p as usize % 16 == 0);
            p.write_bytes(7, 10);
            let q = c::realloc(p.cast(), 50_000).cast::<u8>();
            assert_eq!(std::slice::from_raw_parts(q, 10), &[7; 10]);
            let r = c::realloc(q.cast(), 20).cast::<u8>();
            assert_eq!(std::slice::from_raw_parts(r, 10), &[7; 10]);
            c::free(r.cast());
            c::free(null_mut());
            // A block used and freed, handed out again by calloc: zeroed.
            let d = c::malloc(300).cast::<u8>();
            d.write_bytes(0xff, 300);
            c::free(d.cast());
            let z = c::calloc(100, 3).cast::<u8>();
            assert_eq!(z, d);
            assert!(std::slice::from_raw_parts(z, 300).iter().all(|b| *b == 0));
            c::free(z.cast());
            // A big one (its own mapping).
            let z = c::calloc(1000, 10).cast::<u8>();
            assert!(std::slice::from_raw_parts(z, 10_000)
                .iter()
                .all(|b| *b == 0));
            c::free(z.cast());
            assert!(c::calloc(usize::MAX, 2).is_null());
            assert!(c::malloc(usize::MAX).is_null());
        }
    }
}
