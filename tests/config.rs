//! `masqmail config check|show` on the shipped example configs.

mod common;

use common::*;

fn examples() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_passes_config_check() {
    let m = Mta::new("examples");
    let ex = examples();
    assert!(ex.len() >= 3, "{ex:?}");
    for p in ex {
        let out = m.run_raw(
            "masqmail",
            &["config", "check", "-C", p.to_str().unwrap()],
            b"",
        );
        expect_code(&out, 0);
        assert!(stdout(&out).ends_with(": OK\n"), "{}", stdout(&out));
    }
}

#[test]
fn show_masks_secrets_and_reloads() {
    let m = Mta::new("show");
    let conf = m.dir.path().join("s.conf");
    std::fs::write(
        &conf,
        "config route 'isp'\n\toption mail_host 'smtp.example.net:587'\n\
         \toption auth_login 'me'\n\toption auth_secret 'hunter2'\n\
         config user\n\toption name 'printer'\n\toption password_hash '$6$salt$hash'\n",
    )
    .unwrap();
    let out = m.run_raw(
        "masqmail",
        &["-C", conf.to_str().unwrap(), "config", "show"],
        b"",
    );
    expect_code(&out, 0);
    let shown = stdout(&out);
    assert!(
        !shown.contains("hunter2") && !shown.contains("$6$salt"),
        "{shown}"
    );
    assert!(shown.contains("option auth_secret '********'"), "{shown}");
    assert!(shown.contains("option max_size '10M'"), "{shown}");
    // What show prints is a valid config again.
    let again = m.dir.path().join("again.conf");
    std::fs::write(&again, &shown).unwrap();
    let out = m.run_raw(
        "masqmail",
        &["config", "check", "-C", again.to_str().unwrap()],
        b"",
    );
    expect_code(&out, 0);
}
