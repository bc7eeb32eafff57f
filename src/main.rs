//! The masqmail binary: everything is in the library (src/lib.rs).

/// masqmail's own allocator (src/util/alloc.rs): a few hundred bytes
/// instead of the C library's.
#[global_allocator]
static HEAP: masqmail::util::alloc::Heap = masqmail::util::alloc::Heap;

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(masqmail::run(argv));
}
