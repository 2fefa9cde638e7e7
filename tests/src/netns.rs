//! Worker hosts as test hosts: network namespaces, each joined to a bridge by a veth pair, and a
//! PostgreSQL cluster of the lab's own listening on the bridge. A worker process started in a
//! host (`ip netns exec`) reaches the database only over that host's link, so a test can cut
//! the link (the host's end of the veth set down: packets are dropped, nothing is reset, and
//! every open TCP connection goes half-open, as when a switch or a route fails) and heal it.
//!
//! Everything is named with the prefix `alnt` (links, namespaces) and lives in 10.213.0.0/16,
//! inside the lab only. A [`Lab`] and its [`Host`]s remove what they made when dropped; what a
//! crashed earlier run left behind is removed when the first lab of a process is made.
//!
//! Making namespaces needs root and the `ip` command. Without them [`Lab::new`] prints a loud
//! SKIPPED banner and returns `None`, and on CI (`CI=true`) it fails instead: these tests never
//! pass without having run.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// What every lab's links and namespaces are named with.
const PREFIX: &str = "alnt";

/// The cluster's superuser and password (its `pg_hba.conf` admits the lab's subnet only).
const DB_USER: &str = "autoloader";

/// Where the lab's clusters live: `<dir>-<pid>-<lab>`.
const PG_DIR: &str = "/tmp/autoloader-netns-pg";

/// A bridge, its subnet `10.213.<n>.0/24` (the bridge is `.1`), and a PostgreSQL cluster on it.
pub struct Lab {
    n: u8,
    ip: PathBuf,
    bridge: String,
    pg: Option<Cluster>,
    hosts: Mutex<u8>,
}

/// A network namespace joined to the lab's bridge by a veth pair.
pub struct Host {
    ip: PathBuf,
    pub name: String,
    bridge: String,
    /// The veth end on the bridge: down = the host is cut off.
    link: String,
    pub addr: Ipv4Addr,
}

struct Cluster {
    bindir: PathBuf,
    user: String,
    dir: PathBuf,
    port: u16,
}

impl Lab {
    /// A lab with its cluster running and a database `netns` migrated to the current schema;
    /// `None` (after a SKIPPED banner) where namespaces cannot be made, except on CI, where that
    /// fails the test.
    pub async fn new(test: &str) -> Option<Lab> {
        let ip = match usable() {
            Ok(ip) => ip,
            Err(why) => {
                skipped(test, &why);
                return None;
            }
        };
        static CLEAN: Once = Once::new();
        CLEAN.call_once(|| clean_stale(&ip));
        static NEXT: AtomicU8 = AtomicU8::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let bridge = format!("{PREFIX}{n}br");
        let mut lab = Lab {
            n,
            ip,
            bridge,
            pg: None,
            hosts: Mutex::new(0),
        };
        lab.sh(&[
            "link",
            "add",
            &lab.bridge,
            "address",
            &lab.mac(0),
            "type",
            "bridge",
        ]);
        lab.sh(&[
            "addr",
            "add",
            &format!("{}/24", lab.gateway()),
            "dev",
            &lab.bridge,
        ]);
        lab.sh(&["link", "set", &lab.bridge, "up"]);
        lab.pg = Some(Cluster::start(lab.gateway(), n));
        Some(lab)
    }

    /// The MAC address of host `i` (0: the bridge), fixed so that neighbours can be pinned.
    fn mac(&self, i: u8) -> String {
        format!("02:13:{:02x}:{i:02x}:00:01", self.n)
    }

    /// The bridge's address: where PostgreSQL listens.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.n, 1)
    }

    /// The URL of the lab's database `db`, as the hosts reach it.
    pub fn url(&self, db: &str) -> String {
        let pg = self.pg.as_ref().expect("cluster");
        format!(
            "postgres://{DB_USER}:{DB_USER}@{}:{}/{db}",
            self.gateway(),
            pg.port
        )
    }

    /// A fresh database of the lab's cluster with every migration applied, and a pool on it.
    pub async fn database(&self, name: &str) -> (PgPool, String) {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url("postgres"))
            .await
            .expect("connect to the lab's cluster");
        sqlx::query(&format!("create database {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = self.url(name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await
            .expect("connect to the lab's database");
        autoloader::db::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate the lab's database");
        (pool, url)
    }

    /// A new host on the bridge, its link up.
    pub fn host(&self, name: &str) -> Host {
        let i = {
            let mut h = self.hosts.lock().expect("hosts");
            *h += 1;
            *h
        };
        let ns = format!("{PREFIX}-{}-{name}", self.n);
        let link = format!("{PREFIX}{}h{i}", self.n);
        let inside = format!("{PREFIX}{}n{i}", self.n);
        let addr = Ipv4Addr::new(10, 213, self.n, 10 + i);
        self.sh(&["netns", "add", &ns]);
        let host = Host {
            ip: self.ip.clone(),
            name: ns.clone(),
            bridge: self.bridge.clone(),
            link: link.clone(),
            addr,
        };
        let mac = self.mac(i);
        self.sh(&[
            "link", "add", &link, "type", "veth", "peer", "name", &inside, "address", &mac,
        ]);
        self.sh(&["link", "set", &inside, "netns", &ns]);
        self.sh(&["link", "set", &link, "master", &self.bridge]);
        self.sh(&["link", "set", &link, "up"]);
        host.exec(&["addr", "add", &format!("{addr}/24"), "dev", &inside]);
        host.exec(&["link", "set", &inside, "up"]);
        host.exec(&["link", "set", "lo", "up"]);
        // Neighbours pinned on both sides: a cut link is silence, never a quick "no route to
        // host" from a neighbour lookup that failed, just as when a switch further away fails.
        let gateway = self.gateway().to_string();
        let bridge_mac = self.mac(0);
        host.exec(&[
            "neigh",
            "replace",
            &gateway,
            "lladdr",
            &bridge_mac,
            "dev",
            &inside,
            "nud",
            "permanent",
        ]);
        let host_addr = addr.to_string();
        self.sh(&[
            "neigh",
            "replace",
            &host_addr,
            "lladdr",
            &mac,
            "dev",
            &self.bridge,
            "nud",
            "permanent",
        ]);
        host
    }

    fn sh(&self, args: &[&str]) {
        run(&self.ip, args);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(pg) = self.pg.take() {
            pg.stop();
        }
        let _ = quiet(&self.ip, &["link", "del", &self.bridge]);
    }
}

impl Host {
    /// The command prefix that runs a program inside this host.
    pub fn prefix(&self) -> Vec<String> {
        vec![
            self.ip.display().to_string(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ]
    }

    /// Cuts the host off: its veth leaves the bridge, so every packet either way is dropped
    /// without a word (no reset, no unreachable; both ends keep their carrier). Open connections
    /// go half-open.
    pub fn cut(&self) {
        run(&self.ip, &["link", "set", &self.link, "nomaster"]);
    }

    /// Brings the host's link back.
    pub fn heal(&self) {
        run(
            &self.ip,
            &["link", "set", &self.link, "master", &self.bridge],
        );
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec![
            "netns",
            "exec",
            &self.name,
            self.ip.to_str().expect("utf-8"),
        ];
        all.extend_from_slice(args);
        run(&self.ip, &all);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth end inside it, and with it the pair.
        let _ = quiet(&self.ip, &["netns", "del", &self.name]);
        let _ = quiet(&self.ip, &["link", "del", &self.link]);
    }
}

impl Cluster {
    /// initdb, then start, as the user `scripts/pg.sh` runs clusters as when root; listening on
    /// `addr` only, and admitting the lab's subnet only.
    fn start(addr: Ipv4Addr, n: u8) -> Cluster {
        let bindir = pg_bindir().expect("PostgreSQL server binaries (scripts/pg.sh installs them)");
        let user = ["postgres", "autoloader"]
            .into_iter()
            .find(|u| {
                Command::new("id")
                    .arg(u)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("a `postgres` or `autoloader` system user to run PostgreSQL (scripts/pg.sh makes one)")
            .to_owned();
        let dir = PathBuf::from(format!("{PG_DIR}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).expect("cluster dir");
        let owner = Command::new("chown")
            .args(["-R", &user])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(owner.success(), "chown {}", dir.display());
        let port = free_port(addr);
        let data = dir.join("data");
        as_user(
            &user,
            &bindir.join("initdb"),
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-U",
                DB_USER,
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let conf = format!(
            "listen_addresses = '{addr}'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             max_connections = 200\nshared_buffers = 32MB\n",
            dir.join("run").display()
        );
        append(&data.join("postgresql.conf"), &conf);
        std::fs::write(
            data.join("pg_hba.conf"),
            format!("local all all trust\nhost all all 10.213.{n}.0/24 trust\n"),
        )
        .expect("pg_hba.conf");
        let cluster = Cluster {
            bindir,
            user,
            dir,
            port,
        };
        let log = cluster.dir.join("postgres.log");
        as_user(
            &cluster.user,
            &cluster.bindir.join("pg_ctl"),
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        cluster
    }

    fn stop(self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", &self.user, "--"])
            .arg(self.bindir.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .current_dir("/")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `ip` command, when this process may make namespaces with it; else why not.
fn usable() -> Result<PathBuf, String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("id: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not running as root: network namespaces need CAP_NET_ADMIN".into());
    }
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("no `ip` command (iproute2)")?;
    if pg_bindir().is_none() {
        return Err("no PostgreSQL server binaries under /usr/lib/postgresql".into());
    }
    // The one way to know: make one, and remove it.
    let probe = format!("{PREFIX}-probe-{}", std::process::id());
    let made = quiet(&ip, &["netns", "add", &probe]).map_err(|e| format!("ip netns add: {e}"))?;
    let _ = quiet(&ip, &["netns", "del", &probe]);
    if !made.status.success() {
        return Err(format!(
            "`ip netns add` failed: {}",
            String::from_utf8_lossy(&made.stderr).trim()
        ));
    }
    Ok(ip)
}

fn skipped(test: &str, why: &str) {
    let rule = "!".repeat(78);
    let banner = format!(
        "\n{rule}\n!! SKIPPED: {test}\n!! The network-namespace tests cannot run here: {why}.\n\
         !! Run them as root on Linux with iproute2 (CI does).\n{rule}\n"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of a passing test.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), banner.as_bytes());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot make network namespaces on CI: {why}");
    }
}

/// Removes the links, namespaces and clusters of earlier runs that did not clean up (killed
/// test processes).
fn clean_stale(ip: &Path) {
    if let Ok(out) = quiet(ip, &["netns", "list"]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(&format!("{PREFIX}-")) {
                // Worker processes a killed test left running inside go with it.
                if let Ok(pids) = quiet(ip, &["netns", "pids", name]) {
                    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-KILL", pid]).output();
                    }
                }
                let _ = quiet(ip, &["netns", "del", name]);
            }
        }
    }
    if let Ok(out) = quiet(ip, &["-o", "link", "show"]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "12: alnt1h1@if11: <...>"
            let name = line.split(':').nth(1).unwrap_or_default().trim();
            let name = name.split('@').next().unwrap_or_default();
            if name.starts_with(PREFIX) {
                let _ = quiet(ip, &["link", "del", name]);
            }
        }
    }
    let parent = Path::new(PG_DIR).parent().expect("/tmp");
    let stem = Path::new(PG_DIR)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{stem}-")) {
            // A stale postmaster of a killed run: stop it before its directory goes.
            let data = e.path().join("data");
            if let Some(bindir) = pg_bindir() {
                let owner = std::fs::read_to_string(data.join("postmaster.pid")).is_ok();
                if owner {
                    for user in ["postgres", "autoloader"] {
                        let _ = Command::new("runuser")
                            .args(["-u", user, "--"])
                            .arg(bindir.join("pg_ctl"))
                            .args([
                                "-D",
                                data.to_str().unwrap_or_default(),
                                "-m",
                                "immediate",
                                "-w",
                                "stop",
                            ])
                            .current_dir("/")
                            .output();
                    }
                }
            }
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The newest PostgreSQL's server binaries, as `scripts/pg.sh` finds them.
fn pg_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

fn free_port(addr: Ipv4Addr) -> u16 {
    TcpListener::bind(SocketAddrV4::new(addr, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port on the bridge")
        .port()
}

fn as_user(user: &str, program: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(program)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{} {args:?} as {user}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn append(path: &Path, text: &str) {
    let mut conf = std::fs::read_to_string(path).expect("read conf");
    conf.push_str(text);
    std::fs::write(path, conf).expect("write conf");
}

fn quiet(ip: &Path, args: &[&str]) -> std::io::Result<Output> {
    Command::new(ip).args(args).stdin(Stdio::null()).output()
}

fn run(ip: &Path, args: &[&str]) {
    let out = quiet(ip, args).expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// How long the netns tests' workers hold a lease, and how often they renew it.
pub const LEASE_TTL: Duration = Duration::from_secs(4);

/// The settings the netns tests' workers run with: short leases, and every database wait
/// bounded tightly, so that each test takes seconds.
pub fn fast_settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SCHEDULER_LEASE_TTL", "4"),
        ("SCHEDULER_HEARTBEAT_INTERVAL", "1"),
        ("AUTOLOADER_DB_STATEMENT_TIMEOUT", "2"),
        ("AUTOLOADER_DB_LOCK_TIMEOUT", "2"),
        ("AUTOLOADER_DB_ACQUIRE_TIMEOUT", "2"),
        ("AUTOLOADER_DB_CONNECT_TIMEOUT", "2"),
        ("AUTOLOADER_DB_IDLE_IN_TRANSACTION_TIMEOUT", "5"),
        ("AUTOLOADER_DB_TCP_KEEPALIVE", "1"),
    ]
}
