//! memory — give back the program text that the daemon mapped and does
//! not need while it waits.
//!
//! Start-up (config parsing, set-up) and every burst of work run code the
//! idle daemon does not run, and the kernel maps the neighbours of every
//! page it faults in (fault-around, 64 KiB): much of the binary and of the
//! libraries ends up mapped and counted in the daemon's resident and
//! proportional set size. [`drop_text`] unmaps those pages from this
//! process (`MADV_DONTNEED` on its read-only private file mappings that
//! hold only clean file pages); the page cache keeps them, and what the
//! daemon runs next is faulted back in from there. Nothing is lost: the
//! pages are read-only and backed by their files. Mappings with copied
//! pages (RELRO data the dynamic loader relocated) are left alone.
//!
//! The daemon calls it when it goes idle; it costs a read of
//! /proc/self/smaps and a few madvise calls.

/// Drop this process's clean pages of read-only file mappings. Returns
/// the bytes of address space advised.
pub fn drop_text() -> usize {
    #[cfg(target_os = "linux")]
    {
        linux::drop_text()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(target_os = "linux")]
mod linux {
    /// One mapping of /proc/self/smaps: its range, whether it is a
    /// read-only private mapping of a file, and whether it holds any anonymous
    /// (copied-on-write) page, such as the RELRO data the dynamic loader
    /// relocated before it made them read-only. Only clean file pages may
    /// be dropped: the others would come back from the file unrelocated.
    struct Mapping {
        start: usize,
        end: usize,
        candidate: bool,
        anonymous: bool,
    }

    fn mappings() -> Vec<Mapping> {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return Vec::new();
        };
        let mut out: Vec<Mapping> = Vec::new();
        for line in smaps.lines() {
            let mut f = line.split_whitespace();
            let Some(first) = f.next() else {
                continue;
            };
            if let Some(kib) = first.strip_prefix("Anonymous:").map(|_| f.next()) {
                if let Some(m) = out.last_mut() {
                    m.anonymous |= kib.is_some_and(|k| k != "0");
                }
                continue;
            }
            let Some((a, b)) = first.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            out.push(Mapping {
                start,
                end,
                candidate: perms.starts_with("r-") && perms.ends_with('p') && path.starts_with('/'),
                anonymous: false,
            });
        }
        out
    }

    pub fn drop_text() -> usize {
        let mut total = 0;
        for m in mappings() {
            if !m.candidate || m.anonymous || m.end <= m.start {
                continue;
            }
            // SAFETY: a read-only private file mapping of this process
            // holding only clean file pages: dropping them only
            // makes the next access fault them in again from the file.
            let r = unsafe {
                libc::madvise(
                    m.start as *mut libc::c_void,
                    m.end - m.start,
                    libc::MADV_DONTNEED,
                )
            };
            if r == 0 {
                total += m.end - m.start;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process goes on working after its text, its libraries' text and
    /// their read-only data were dropped (relocated data is kept).
    #[test]
    fn work_goes_on_after_drop() {
        let first = drop_text();
        if cfg!(target_os = "linux") {
            assert!(first > 0);
        }
        let words: Vec<String> = (0..100).map(|i| format!("{i:x}")).collect();
        let f: Box<dyn Fn(&str) -> usize> = Box::new(|s| s.len());
        assert_eq!(words.iter().map(|w| f(w)).sum::<usize>(), 184);
        drop_text();
        assert_eq!(std::env::var("NO_SUCH_VARIABLE_HERE").ok(), None);
        assert!(std::fs::read_to_string("/proc/self/status").is_ok() || !cfg!(target_os = "linux"));
    }
}
