//! `-bv ADDR…` (where would each address go) and `-bi` / `newaliases`
//! (check the alias file).

use crate::addr::Address;
use crate::config::Config;
use crate::error::{CmdResult, Exit, Fail};
use crate::scan::alias::{read_alias_file, ResolveError};
use crate::scan::Scanner;

pub fn addresses(cfg: &Config, args: &[&str]) -> CmdResult {
    if args.is_empty() {
        return Err(Fail::usage("-bv needs addresses to verify"));
    }
    let scanner = Scanner::new(cfg).map_err(|e| Fail::new(Exit::TempFail, e))?;
    let mut worst: Option<Fail> = None;
    for arg in args {
        let addr = match Address::parse(arg, Some(&cfg.main.host_name)) {
            Ok(a) => a,
            Err(e) => {
                println!("{arg}: bad address: {e}");
                worst.get_or_insert(Fail::usage(format!("bad address '{arg}': {e}")));
                continue;
            }
        };
        match scanner.resolve(&addr) {
            Ok(list) => {
                for r in list {
                    println!("{addr} -> {r}");
                }
            }
            Err(e) => {
                println!("{addr}: {e}");
                let code = match e {
                    ResolveError::UnknownUser(_) => Exit::NoUser,
                    _ => Exit::DataErr,
                };
                worst = Some(Fail::new(code, format!("{addr}: {e}")));
            }
        }
    }
    worst.map_or(Ok(()), Err)
}

pub fn alias_file(cfg: &Config) -> CmdResult {
    let n_cfg = cfg.aliases.len();
    let Some(path) = &cfg.main.alias_file else {
        println!("no alias_file configured; {n_cfg} alias(es) in the config");
        return Ok(());
    };
    let (entries, errors) =
        read_alias_file(path, &cfg.main.host_name).map_err(|e| Fail::new(Exit::Config, e))?;
    for e in &errors {
        eprintln!("{}:{e}", path.display());
    }
    println!(
        "{}: {} alias(es), {} error(s); {n_cfg} alias(es) in the config",
        path.display(),
        entries.len(),
        errors.len()
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Fail::new(
            Exit::Config,
            format!(
                "{}: {} error(s) in the alias file",
                path.display(),
                errors.len()
            ),
        ))
    }
}
