//! The masqmail binary: everything is in the library (src/lib.rs).

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(masqmail::run(argv));
}
