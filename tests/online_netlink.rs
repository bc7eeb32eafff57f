//! Online detection with real kernel events: the daemon runs in a network
//! namespace (`ip netns exec`), joined by a veth pair to a second one that
//! holds the SMTP sink on an address reachable only through a default
//! route. The tests add and remove the default route and addresses, bring
//! links and carriers up and down, and check that mail reaches the sink
//! only while the route is up — without any flush command. They need root
//! and print SKIP with the reason without it.

mod common;
mod online_support;
#[path = "common/sink.rs"]
#[allow(unused_imports)]
mod sink;

use std::time::{Duration, Instant};

use common::*;
use online_support::*;
use sink::{Behaviour, Sink};

const SINK_PORT: u16 = 2525;

macro_rules! need_netns {
    ($name:expr) => {
        if let Some(why) = netns_unavailable() {
            println!("SKIP {}: {why}", $name);
            return;
        }
    };
}

/// An installation whose route `wan` goes to the sink in `net`.
fn mta(tag: &str, net: &Net, detect: &str, extra: &str, routes: &str) -> Mta {
    Mta::with_config(
        tag,
        &format!(
            "\toption listen_addresses '127.0.0.1:2525'\n\
             \toption online_detect '{detect}'\n{extra}"
        ),
        &format!(
            "config route 'wan'\n\
             \toption mail_host '{}:{SINK_PORT}'\n\
             \toption tls 'none'\n{routes}",
            net.sink_ip
        ),
    )
}

#[test]
fn netlink_events_send_mail_while_the_route_is_up() {
    need_netns!("netlink_events_send_mail_while_the_route_is_up");
    let net = Net::new(1);
    let sink = Sink::start_on(net.sink_listener(SINK_PORT), Behaviour::default());
    // `wan` on the veth device; `dsl` only on a device that never exists,
    // for mail to other.example.
    let m = mta(
        "nl-events",
        &net,
        "netlink",
        "",
        &format!(
            "\tlist devices '{}'\n\
             \tlist denied_recipients '*@other.example'\n\
             config route 'dsl'\n\
             \toption mail_host '{}:{SINK_PORT}'\n\
             \toption tls 'none'\n\
             \tlist devices 'pppoe-nosuch'\n\
             \tlist allowed_recipients '*@other.example'\n",
            net.dev, net.sink_ip
        ),
    );
    let d = Daemon::start(&m, Some(&net.d));
    assert_eq!(d.route("wan"), "offline - -");

    // 1. No default route: queued, not tried.
    queue(&m, "a@example.org", 1);
    queue(&m, "b@other.example", 2);
    wait_scanned(&m);
    stays_queued(&m, &sink, 0);

    // 2. The default route appears: out at once, no flush; `dsl` still
    //    has no device, so other.example waits.
    let t0 = Instant::now();
    net.route_up();
    let got = wait_sink(&sink, 1, &d);
    println!("route up -> delivered in {:?}", t0.elapsed());
    assert_eq!(subjects(&got), ["online test 1"]);
    d.wait_route("wan", &format!("online netlink {}", net.dev));
    assert_eq!(d.route("dsl"), "offline - -");
    let status = d.request("status").unwrap();
    assert!(
        status.contains(&format!(
            "route wan: online (default route via {})",
            net.dev
        )),
        "{status}"
    );
    // `masqmail status` adds what waits for each route.
    let out = m.run("masqmail", &["status"], b"");
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("route dsl: offline; 1 recipient(s) waiting"),
        "{}",
        stdout(&out)
    );
    let json = stdout(&m.run("masqmail", &["queue", "--json"], b""));
    assert!(
        json.contains(&format!(
            "{{\"name\":\"wan\",\"state\":\"online\",\"online\":true,\"source\":\"netlink\",\"detail\":\"{}\",\"why\":\"default route via {}\",\"waiting\":0}}",
            net.dev, net.dev
        )),
        "{json}"
    );
    assert!(json.contains("\"daemon\":true"), "{json}");

    // 3. The default route goes: new mail waits, and goes when it is back.
    net.route_down();
    d.wait_route("wan", "offline");
    queue(&m, "a@example.org", 3);
    stays_queued(&m, &sink, 1);
    net.route_up();
    assert_eq!(subjects(&wait_sink(&sink, 2, &d))[1], "online test 3");

    // 4. The address goes (the kernel drops the route silently with it).
    net.ip_d(&["addr", "del", &net.addr, "dev", &net.dev]);
    d.wait_route("wan", "offline");
    queue(&m, "a@example.org", 4);
    stays_queued(&m, &sink, 2);
    net.ip_d(&["addr", "add", &net.addr, "dev", &net.dev]);
    stays_queued(&m, &sink, 2); // an address alone is no default route
    net.route_up();
    assert_eq!(subjects(&wait_sink(&sink, 3, &d))[2], "online test 4");

    // 5. The link goes down and up (routes are flushed with it).
    net.ip_d(&["link", "set", &net.dev, "down"]);
    d.wait_route("wan", "offline");
    queue(&m, "a@example.org", 5);
    stays_queued(&m, &sink, 3);
    net.ip_d(&["link", "set", &net.dev, "up"]);
    stays_queued(&m, &sink, 3);
    net.route_up();
    assert_eq!(subjects(&wait_sink(&sink, 4, &d))[3], "online test 5");

    // 6. The carrier goes (the peer is down): the route stays in the
    //    table but is unusable; the carrier returns: out, with no change
    //    to routes at all.
    net.ip_s(&["link", "set", &net.peer, "down"]);
    d.wait_route("wan", "offline");
    queue(&m, "a@example.org", 6);
    stays_queued(&m, &sink, 4);
    net.ip_s(&["link", "set", &net.peer, "up"]);
    assert_eq!(subjects(&wait_sink(&sink, 5, &d))[4], "online test 6");

    // other.example never went anywhere.
    assert!(m.mailq().contains("b@other.example"));
    assert_eq!(sink.messages().len(), 5);
    let log = d.log();
    assert!(log.contains("route wan came online"), "{log}");
    assert!(!log.contains("route dsl came online"), "{log}");
    d.stop();
}

/// A default route over IPv6 counts too.
#[test]
fn netlink_ipv6_default_route() {
    need_netns!("netlink_ipv6_default_route");
    let net = Net::new(2);
    let m = mta("nl-v6", &net, "netlink", "", "");
    let d = Daemon::start(&m, Some(&net.d));
    assert_eq!(d.route("wan"), "offline - -");
    net.ip_d(&[
        "-6",
        "addr",
        "add",
        "2001:db8:7::2/64",
        "dev",
        &net.dev,
        "nodad",
    ]);
    net.ip_d(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8:7::1",
        "dev",
        &net.dev,
    ]);
    d.wait_route("wan", &format!("online netlink {}", net.dev));
    net.ip_d(&[
        "-6",
        "route",
        "del",
        "default",
        "via",
        "2001:db8:7::1",
        "dev",
        &net.dev,
    ]);
    d.wait_route("wan", "offline");
    d.stop();
}

/// `online_detect 'command'` re-runs the query on netlink events (and on
/// nothing else): adding a route makes the daemon ask again.
#[test]
fn command_is_asked_again_on_netlink_events() {
    need_netns!("command_is_asked_again_on_netlink_events");
    let net = Net::new(3);
    let sink = Sink::start_on(net.sink_listener(SINK_PORT), Behaviour::default());
    let dir = std::env::temp_dir().join(format!("mm-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state");
    let count = dir.join("count");
    std::fs::write(&state, "").unwrap();
    let m = mta(
        "nl-command",
        &net,
        "command",
        &format!(
            "\toption online_query \"/bin/sh -c 'echo x >> {}; cat {}'\"\n",
            count.display(),
            state.display()
        ),
        "",
    );
    // No IPv6 here: its address setup would send events for a while.
    sh(&[
        "ip",
        "netns",
        "exec",
        &net.d,
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
    ]);
    let d = Daemon::start(&m, Some(&net.d));
    let runs = || std::fs::read_to_string(&count).map_or(0, |s| s.lines().count());
    // Settled: no run for 700 ms.
    let quiet = || {
        let mut last = runs();
        let mut since = Instant::now();
        wait_until(Duration::from_secs(10), || {
            let now = runs();
            if now != last {
                last = now;
                since = Instant::now();
            }
            since.elapsed() > Duration::from_millis(700)
        });
        last
    };
    assert!(
        wait_until(Duration::from_secs(5), || runs() >= 1),
        "asked at start"
    );
    queue(&m, "a@example.org", 1);
    wait_scanned(&m);
    let before = quiet();
    // The network comes up, but the command says nothing: offline.
    net.route_up();
    assert!(
        wait_until(Duration::from_secs(5), || runs() > before),
        "asked on the route event"
    );
    let before = quiet();
    stays_queued(&m, &sink, 0);
    // Nothing asks again by itself (no timer), even when the answer
    // would change.
    std::fs::write(&state, "wan\n").unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(runs(), before, "asked without an event");
    stays_queued(&m, &sink, 0);
    // A link event: asked again, now online, mail goes.
    net.ip_d(&["addr", "add", "10.201.3.9/24", "dev", &net.dev]);
    wait_sink(&sink, 1, &d);
    d.wait_route("wan", "online command wan");
    d.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Flap the link 100 times with mail queued before and during: one
/// daemon afterwards, no zombies, every message delivered exactly once.
#[test]
fn flapping_link() {
    need_netns!("flapping_link");
    let t0 = Instant::now();
    let net = Net::new(4);
    let sink = Sink::start_on(net.sink_listener(SINK_PORT), Behaviour::default());
    let m = mta("nl-flap", &net, "netlink", "", "");
    let mut d = Daemon::start(&m, Some(&net.d));
    for n in 0..5 {
        queue(&m, "a@example.org", n);
    }
    let mut n = 5;
    for i in 0..100 {
        if i % 2 == 0 {
            // Carrier flap: the peer goes down and up.
            net.ip_s(&["link", "set", &net.peer, "down"]);
            net.ip_s(&["link", "set", &net.peer, "up"]);
        } else {
            // Link flap: down (routes flushed), up, the route back.
            net.ip_d(&["link", "set", &net.dev, "down"]);
            net.ip_d(&["link", "set", &net.dev, "up"]);
            net.route_up();
        }
        if i == 0 {
            net.route_up();
        }
        if i % 20 == 10 {
            queue(&m, "a@example.org", n);
            n += 1;
        }
    }
    println!("100 flaps in {:?}", t0.elapsed());
    // The link stays up now: everything goes out, once.
    let got = wait_sink(&sink, n, &d);
    std::thread::sleep(Duration::from_millis(300));
    let mut subj = subjects(&sink.messages());
    subj.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("online test {i}")).collect();
    want.sort();
    assert_eq!(subj, want, "each message exactly once");
    assert!(got.len() >= n);
    assert!(d.alive(), "the daemon died:\n{}", d.log());
    let left = d.settle(Duration::from_secs(10));
    assert!(left.is_empty(), "children left (Z = zombie): {left:?}");
    let conf = m.conf.to_str().unwrap().to_string();
    assert_eq!(processes_with(&conf), [d.pid], "one daemon, nothing else");
    assert!(m.mailq().contains("Mail queue is empty"));
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");
    println!(
        "daemon saw: {} came online, {} went offline, {} re-reads after overruns, {} queue runs logged",
        log.matches("came online").count(),
        log.matches("went offline").count(),
        log.matches("reading the whole state again").count(),
        log.matches("queue run:").count()
    );
    d.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(90),
        "took {:?}",
        t0.elapsed()
    );
}

/// A real overrun: a socket with the smallest buffer, 300 address events
/// while nobody reads. The kernel reports ENOBUFS; the monitor reads the
/// whole state again and ends up with what the kernel has.
#[test]
fn overrun_reads_the_whole_state_again() {
    need_netns!("overrun_reads_the_whole_state_again");
    use masqmail::online::netlink::Monitor;
    use std::os::fd::AsRawFd;
    let net = Net::new(5);
    net.route_up();
    let path = format!("/run/netns/{}", net.d);
    let ns = net.d.clone();
    let (overruns, table, devices) = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: this thread only; the fd is valid.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let mut m = Monitor::open(true).unwrap();
        assert!(m.settle(Duration::from_secs(3)));
        m.set_recv_buffer(1024).unwrap();
        let script: String = (0..300)
            .map(|i| format!("addr add 10.203.{}.{}/32 dev lo\n", i / 200, i % 200 + 1))
            .collect();
        let mut ip = std::process::Command::new("ip")
            .args(["-n", &ns, "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        ip.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(ip.wait().unwrap().success());
        let t0 = Instant::now();
        while (m.overruns() == 0 || !m.settled()) && t0.elapsed() < Duration::from_secs(5) {
            m.read();
            std::thread::sleep(Duration::from_millis(5));
        }
        (
            m.overruns(),
            m.table().describe(),
            m.table().online_devices(),
        )
    })
    .join()
    .unwrap();
    assert!(overruns >= 1, "no overrun provoked: {table}");
    // lo: 127.0.0.1, ::1 and the 300 new ones, read again whole.
    assert!(table.contains("lo:1UR a302 r0"), "{table}");
    assert_eq!(
        devices.into_iter().collect::<Vec<_>>(),
        std::slice::from_ref(&net.dev)
    );
}
