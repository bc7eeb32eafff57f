//! The masqmail binary: everything is in the library (src/lib.rs).
//!
//! No std runtime start-up (`#![no_main]`): the C library calls `main`
//! below, which does the little of std's start-up that masqmail needs:
//! descriptors 0-2 open (on /dev/null when the caller closed them, so no
//! file the program opens becomes its stdout), SIGPIPE ignored (a closed
//! pipe is an EPIPE error to handle, not death), the arguments as
//! strings, and stdout flushed at the end.
// (The unit-test build of this file keeps the test harness's main.)
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int, CStr};

/// masqmail's own allocator (src/util/alloc.rs): a few hundred bytes
/// instead of the C library's.
#[global_allocator]
static HEAP: masqmail::util::alloc::Heap = masqmail::util::alloc::Heap;

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // SAFETY: plain system calls on descriptor numbers and a constant
    // path; the C library passes argc strings in argv.
    let argv = unsafe {
        for fd in 0..3 {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        (0..argc as usize)
            .map(|i| CStr::from_ptr(*argv.add(i)).to_string_lossy().into_owned())
            .collect()
    };
    let code = masqmail::run(argv);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}
