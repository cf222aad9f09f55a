//! The session's `FileSync/DiffCopy`: serves the build context and the Dockerfile to the
//! daemon, speaking tonistiigi/fsutil's packet protocol as the docker CLI's sender does.
//!
//! The daemon (the gRPC client) opens one DiffCopy per local source it needs, naming it in the
//! `dir-name` metadata (`context` or `dockerfile`) with optional `include-patterns` /
//! `exclude-patterns`. We send a `PACKET_STAT` per entry in Go's `filepath.Walk` order (names
//! sorted bytewise inside each directory, depth first), an empty `PACKET_STAT` to end the list,
//! then answer each `PACKET_REQ{id}` (the index of a regular file's stat) with `PACKET_DATA`
//! chunks and an empty `PACKET_DATA`, and a `PACKET_FIN` with a `PACKET_FIN`.
//!
//! What is served is decided by the caller: the context entries come from `context::scan` (the
//! only definition of what Docker sends); the daemon's patterns only narrow them, with the
//! context's own matcher. Owners are reset to 0:0 as the docker CLI does (`resetUIDAndGID`), so
//! the cache behaves as with `docker build`. Files are opened without following links and read
//! up to the size they were scanned with.

use crate::context::dockerignore::Matcher;
use crate::context::entry::{dev_numbers, EntryKind, SendList, Sendable, StatInfo};
use crate::pathrules;
use bollard_buildkit_proto::fsutil::types::{packet::PacketType, Packet, Stat};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSync;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

/// Bytes per `PACKET_DATA` (fsutil's sender uses 32 KiB).
const CHUNK: usize = 32 * 1024;
/// Packets queued towards the daemon before the sender waits.
const QUEUE: usize = 64;

/// What the session serves.
#[derive(Debug)]
pub struct Sources {
    /// The context root.
    pub root: PathBuf,
    /// The entries `COPY . /dst/` sees, sorted by path bytes: the scanned entries or the
    /// records of their keyed manifest, whichever the caller holds (never a copy of them).
    pub entries: Box<dyn SendList>,
    /// The name the Dockerfile is served under in the `dockerfile` source (`dockerfile=`).
    pub dockerfile_name: String,
    /// The Dockerfile as built (it may exist only in memory, rendered).
    pub dockerfile: Vec<u8>,
    /// The ignore file the scan applied, served as `<dockerfile_name>.dockerignore` beside the
    /// Dockerfile: the frontend then excludes exactly what the scan excluded (it would
    /// otherwise read the context's `.dockerignore`, even when a `<Dockerfile>.dockerignore`
    /// replaced it).
    pub ignore: Option<Vec<u8>>,
}

/// The `FileSync` service of one session.
#[derive(Debug, Clone)]
pub struct FileSyncService {
    pub sources: Arc<Sources>,
    /// What was sent to the daemon so far (what the report calls the context sent).
    pub sent: Arc<Transfer>,
}

/// Bytes sent and when the last of them went, shared between the session and the build.
#[derive(Debug)]
pub struct Transfer {
    since: Instant,
    bytes: AtomicU64,
    last_ns: AtomicU64,
}

impl Transfer {
    pub fn new(since: Instant) -> Transfer {
        Transfer {
            since,
            bytes: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
        }
    }

    fn add(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let ns = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// File bytes sent.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Seconds from the start to the last byte sent (BuildKit asks for files as it goes).
    pub fn seconds(&self) -> f64 {
        self.last_ns.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// One entry of a listing, by reference: its stat is made when it is sent and dropped once
/// sent, so a listing costs 8 bytes per entry, not a second copy of every path (a million-file
/// context held its paths three more times here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// `sources.entries[i]`.
    Entry(u32),
    Dockerfile,
    Ignore,
}

type PacketStream = Pin<Box<dyn futures_util::Stream<Item = Result<Packet, Status>> + Send>>;

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        let meta = request.metadata();
        let values = |key: &str| -> Vec<String> {
            meta.get_all(key)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect()
        };
        let dir = values("dir-name").into_iter().next().unwrap_or_default();
        // fsutil adds the follow paths to the include patterns: the frontend asks for the
        // Dockerfile and `.dockerignore` this way, and sending the whole context for them
        // made the daemon cancel a large context's `load .dockerignore`.
        let mut include = values("include-patterns");
        include.extend(values("followpaths"));
        let exclude = values("exclude-patterns");
        let items = match dir.as_str() {
            "context" => context_items(&self.sources, &include, &exclude)?,
            "dockerfile" => dockerfile_items(&self.sources, &include),
            other => {
                return Err(Status::not_found(format!(
                    "no local source `{other}` in this session"
                )))
            }
        };
        // Two queues merged into the answer: the stats (small, as many as the entries already
        // held) never wait behind file data, and file data (up to QUEUE chunks) never waits
        // behind stats. One shared bounded queue deadlocked on large contexts: the daemon
        // stops reading while it waits for a file's data queued behind the rest of the
        // listing, and the build died with "load build context: context canceled".
        // Stats are made as the queue drains, so it can stay short: the merge below still
        // never lets file data wait behind them.
        let (stat_tx, stat_rx) = mpsc::channel::<Result<Packet, Status>>(QUEUE);
        let (tx, rx) = mpsc::channel::<Result<Packet, Status>>(QUEUE);
        let incoming = request.into_inner();
        tokio::spawn(serve(
            items,
            Arc::clone(&self.sources),
            Arc::clone(&self.sent),
            incoming,
            stat_tx,
            tx,
        ));
        let queue = |rx: mpsc::Receiver<Result<Packet, Status>>| {
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|p| (p, rx)) },
            )
        };
        let stream = futures_util::stream::select(queue(stat_rx), queue(rx));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        Err(Status::unimplemented(
            "ctxbuild serves the context with DiffCopy only",
        ))
    }
}

/// Sends the stats, then answers the receiver's requests until it says FIN.
async fn serve(
    items: Vec<Served>,
    sources: Arc<Sources>,
    sent: Arc<Transfer>,
    mut incoming: Streaming<Packet>,
    stats_tx: mpsc::Sender<Result<Packet, Status>>,
    tx: mpsc::Sender<Result<Packet, Status>>,
) {
    let items: Arc<[Served]> = items.into();
    let listing = Arc::clone(&items);
    let stat_sources = Arc::clone(&sources);
    let stats = tokio::spawn(async move {
        let mut links = HashMap::new();
        for &it in listing.iter() {
            let p = Packet {
                r#type: PacketType::PacketStat as i32,
                stat: Some(stat_of(&stat_sources, it, &mut links)),
                ..Default::default()
            };
            if stats_tx.send(Ok(p)).await.is_err() {
                return;
            }
        }
        let end = Packet {
            r#type: PacketType::PacketStat as i32,
            ..Default::default()
        };
        let _ = stats_tx.send(Ok(end)).await;
    });
    // Requests are only queued here and answered by their own task: this loop must always
    // read. If it waited to send a file's data, the daemon (blocked sending its next request)
    // would stop reading the data it waits for, and a large context deadlocked until the
    // build was cancelled. At most one request per file: the queue is bounded by the listing.
    let (req_tx, mut req_rx) = mpsc::channel::<u32>(items.len() + 1);
    let data_tx = tx.clone();
    let sender = tokio::spawn(async move {
        while let Some(id) = req_rx.recv().await {
            let Some(&r) = items.get(id as usize).filter(|&&r| readable(&sources, r)) else {
                let _ = data_tx
                    .send(Err(Status::invalid_argument(format!(
                        "no file with id {id}"
                    ))))
                    .await;
                return;
            };
            if let Err(e) = send_data(id, r, &sources, &sent, &data_tx).await {
                let _ = data_tx.send(Err(e)).await;
                return;
            }
        }
    });
    let mut req_tx = Some(req_tx);
    while let Some(msg) = incoming.next().await {
        let Ok(p) = msg else { break };
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketReq) => {
                let queued = req_tx.as_ref().is_some_and(|q| q.try_send(p.id).is_ok());
                if !queued {
                    let _ = tx
                        .send(Err(Status::invalid_argument(
                            "more file requests than files in the listing",
                        )))
                        .await;
                    break;
                }
            }
            Ok(PacketType::PacketFin) => {
                // Every requested file was received before the daemon's FIN.
                drop(req_tx.take());
                let _ = sender.await;
                let _ = stats.await;
                let fin = Packet {
                    r#type: PacketType::PacketFin as i32,
                    ..Default::default()
                };
                let _ = tx.send(Ok(fin)).await;
                break;
            }
            Ok(PacketType::PacketErr) => break,
            _ => {}
        }
    }
}

async fn send_data(
    id: u32,
    what: Served,
    sources: &Sources,
    sent: &Transfer,
    tx: &mpsc::Sender<Result<Packet, Status>>,
) -> Result<(), Status> {
    let data = |data: Vec<u8>| Packet {
        r#type: PacketType::PacketData as i32,
        id,
        data,
        ..Default::default()
    };
    let closed = || Status::cancelled("the daemon stopped reading");
    match what {
        Served::Dockerfile | Served::Ignore => {
            for c in in_memory(sources, what).chunks(CHUNK) {
                sent.add(c.len());
                tx.send(Ok(data(c.to_vec()))).await.map_err(|_| closed())?;
            }
        }
        Served::Entry(i) => {
            let e = entry(sources, i)?;
            let (path, size) = (e.rel_path(), e.size());
            let full = sources.root.join(path);
            let file = tokio::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&full)
                .await
                .map_err(|e| Status::internal(format!("cannot open {}: {e}", path.display())))?;
            // Read what was scanned: a file that grew since cannot change what was announced.
            let mut file = file.take(size);
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = file.read(&mut buf).await.map_err(|e| {
                    Status::internal(format!("cannot read {}: {e}", path.display()))
                })?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                sent.add(n);
                tx.send(Ok(data(buf))).await.map_err(|_| closed())?;
            }
        }
    }
    tx.send(Ok(data(Vec::new()))).await.map_err(|_| closed())
}

/// The context entry `i`, or the error the daemon gets for an index it was never given.
fn entry(sources: &Sources, i: u32) -> Result<&dyn Sendable, Status> {
    sources
        .entries
        .get(i as usize)
        .ok_or_else(|| Status::invalid_argument(format!("no entry {i} in the context")))
}

/// The Dockerfile (and the applied ignore file), the entries of the `dockerfile` source.
fn dockerfile_items(sources: &Sources, include: &[String]) -> Vec<Served> {
    [Served::Dockerfile, Served::Ignore]
        .into_iter()
        .filter(|&it| {
            let name = served_name(sources, it);
            let exists = it == Served::Dockerfile || sources.ignore.is_some();
            exists && (include.is_empty() || included(include, name.as_bytes()))
        })
        .collect()
}

/// The name a served in-memory file has in the `dockerfile` source.
fn served_name(sources: &Sources, it: Served) -> String {
    match it {
        Served::Ignore => format!("{}.dockerignore", sources.dockerfile_name),
        _ => sources.dockerfile_name.clone(),
    }
}

/// The bytes of a served in-memory file (the Dockerfile or the applied ignore file).
fn in_memory(sources: &Sources, it: Served) -> &[u8] {
    match it {
        Served::Ignore => sources.ignore.as_deref().unwrap_or_default(),
        _ => &sources.dockerfile,
    }
}

/// Whether the receiver may ask for the data of `it`.
fn readable(sources: &Sources, it: Served) -> bool {
    match it {
        Served::Entry(i) => sources
            .entries
            .get(i as usize)
            .is_some_and(|e| e.kind() == EntryKind::File),
        Served::Dockerfile => true,
        Served::Ignore => sources.ignore.is_some(),
    }
}

/// The stat sent for `it`. `links` remembers the first path of every inode sent so far: a
/// later hard link to it is sent as a link, which the receiver makes without asking for data.
fn stat_of(sources: &Sources, it: Served, links: &mut HashMap<(u64, u64), u32>) -> Stat {
    let i = match it {
        Served::Entry(i) => i,
        Served::Dockerfile | Served::Ignore => {
            let bytes = in_memory(sources, it);
            return Stat {
                path: served_name(sources, it),
                mode: 0o644,
                size: bytes.len() as i64,
                mod_time: content_time(bytes),
                ..Default::default()
            };
        }
    };
    let Some(e) = sources.entries.get(i as usize) else {
        return Stat::default();
    };
    // A record without the scan's stat: the file is asked now (one lstat, as fsutil's own
    // sender does for every entry). One that vanished since has no time and no inode.
    let st = e.stat().unwrap_or_else(|| {
        std::fs::symlink_metadata(sources.root.join(e.rel_path())).map_or(
            StatInfo::default(),
            |md| {
                use std::os::unix::fs::MetadataExt;
                // A file with one link is nobody's hard link: no inode, so it is not
                // remembered (the map of every file sent was ~40 bytes per file).
                let linked = md.nlink() > 1;
                StatInfo {
                    dev: if linked { md.dev() } else { 0 },
                    ino: if linked { md.ino() } else { 0 },
                    mtime_ns: StatInfo::ns(md.mtime(), md.mtime_nsec()),
                    ctime_ns: StatInfo::ns(md.ctime(), md.ctime_nsec()),
                }
            },
        )
    });
    let mut stat = Stat {
        path: String::from_utf8_lossy(e.path_bytes()).into_owned(),
        mode: go_mode(e),
        size: if e.kind() == EntryKind::Dir {
            0
        } else {
            e.size() as i64
        },
        mod_time: st.mtime_ns,
        ..Default::default()
    };
    match e.kind() {
        EntryKind::Symlink => {
            stat.linkname = e
                .link_target()
                .map(|t| String::from_utf8_lossy(t.as_os_str().as_bytes()).into_owned())
                .unwrap_or_default();
        }
        EntryKind::CharDevice | EntryKind::BlockDevice => {
            let (major, minor) = dev_numbers(e.rdev());
            stat.devmajor = i64::from(major);
            stat.devminor = i64::from(minor);
        }
        EntryKind::File => {
            let inode = (st.dev, st.ino);
            if inode != (0, 0) {
                match links.get(&inode) {
                    Some(&first) => {
                        let first = sources.entries.get(first as usize).map(|f| f.path_bytes());
                        stat.linkname =
                            String::from_utf8_lossy(first.unwrap_or_default()).into_owned();
                    }
                    None => {
                        links.insert(inode, i);
                    }
                }
            }
        }
        EntryKind::Dir | EntryKind::Fifo => {}
    }
    stat
}

/// A modification time derived from the content: the receiver skips a file whose size and
/// mtime it already holds, so a changed render must look changed.
fn content_time(bytes: &[u8]) -> i64 {
    let digest = blake3::hash(bytes);
    let mut t = [0u8; 8];
    t.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_le_bytes(t) >> 2) as i64
}

/// The context entries the daemon asked for, in walk order, with their parent directories.
fn context_items(
    sources: &Sources,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<Served>, Status> {
    let index = |i: usize| {
        u32::try_from(i)
            .map(Served::Entry)
            .map_err(|_| Status::resource_exhausted("more than 4 billion entries in the context"))
    };
    let path = |it: &Served| match *it {
        Served::Entry(i) => sources
            .entries
            .get(i as usize)
            .map_or(&[][..], |e| e.path_bytes()),
        _ => &[],
    };
    let all = || (0..sources.entries.len()).filter_map(|i| Some((i, sources.entries.get(i)?)));
    let mut chosen: Vec<Served> = if include.is_empty() && exclude.is_empty() {
        // The whole context (the `COPY` transfer): no pattern to apply, no parents to add.
        (0..sources.entries.len())
            .map(index)
            .collect::<Result<_, _>>()?
    } else {
        let mut excluded = Matcher::empty();
        for p in exclude {
            excluded.add_pattern(p.as_bytes()).map_err(|e| {
                Status::invalid_argument(format!("bad exclude pattern from the daemon: {e}"))
            })?;
        }
        let wanted = |e: &dyn Sendable| {
            let p = e.path_bytes();
            (include.is_empty() || included(include, p)) && !excluded.is_excluded(p)
        };
        let by_path: HashMap<&[u8], usize> = all().map(|(i, e)| (e.path_bytes(), i)).collect();
        let mut keep: HashSet<usize> = HashSet::new();
        for (i, e) in all().filter(|(_, e)| wanted(*e)) {
            if !keep.insert(i) {
                continue;
            }
            // The receiver refuses an entry whose parent directory it has not seen.
            let mut cut = e.path_bytes();
            while let Some(k) = cut.iter().rposition(|&b| b == b'/') {
                cut = &cut[..k];
                match by_path.get(cut) {
                    Some(&parent) if !keep.insert(parent) => break,
                    _ => {}
                }
            }
        }
        let mut keep: Vec<usize> = keep.into_iter().collect();
        keep.sort_unstable();
        keep.into_iter().map(index).collect::<Result<_, _>>()?
    };
    chosen.sort_by(|a, b| walk_order(path(a), path(b)));
    Ok(chosen)
}

/// fsutil's include test (`matchPrefix`): a pattern matches the path or one of its ancestors
/// (then the whole subtree is in), or the path is a directory on the way to what it names.
fn included(patterns: &[String], path: &[u8]) -> bool {
    patterns.iter().any(|pat| {
        let pat = pathrules::clean(pat.as_bytes());
        let pat: Vec<&[u8]> = pat.split(|&b| b == b'/').collect();
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        let n = pat.len().min(parts.len());
        (0..n).all(|i| pathrules::match_path(pat[i], parts[i]).unwrap_or(false))
    })
}

/// Go's `filepath.Walk` order: component by component, each compared bytewise (so `a/x` comes
/// before `a.txt`, unlike a plain byte sort of whole paths).
fn walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// The entry's mode as Go's `os.FileMode`, which is what fsutil puts in `Stat.mode`.
fn go_mode(e: &dyn Sendable) -> u32 {
    let mode = e.mode();
    let mut m = mode & 0o777;
    if mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m | match e.kind() {
        EntryKind::File => 0,
        EntryKind::Dir => 1 << 31,
        EntryKind::Symlink => 1 << 27,
        EntryKind::Fifo => 1 << 25,
        EntryKind::BlockDevice => 1 << 26,
        EntryKind::CharDevice => (1 << 26) | (1 << 21),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::entry::Entry;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: PathBuf::from(path),
            kind,
            mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
            size: 1,
            link_target: None,
            rdev: 0,
            stat: StatInfo::default(),
        }
    }

    fn stats(s: &Sources, items: &[Served]) -> Vec<Stat> {
        let mut links = HashMap::new();
        items.iter().map(|&i| stat_of(s, i, &mut links)).collect()
    }

    fn paths(s: &Sources, items: &[Served]) -> Vec<String> {
        stats(s, items).into_iter().map(|st| st.path).collect()
    }

    fn sources(entries: Vec<Entry>) -> Sources {
        let mut entries = entries;
        entries.sort_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        Sources {
            root: PathBuf::from("/nonexistent"),
            entries: Box::new(entries),
            dockerfile_name: "Dockerfile".into(),
            dockerfile: b"FROM x\n".to_vec(),
            ignore: None,
        }
    }

    #[test]
    fn stats_follow_go_walk_order() {
        let s = sources(vec![
            entry("a.txt", EntryKind::File),
            entry("a", EntryKind::Dir),
            entry("a/x", EntryKind::File),
            entry("b", EntryKind::File),
        ]);
        let items = context_items(&s, &[], &[]).unwrap();
        assert_eq!(paths(&s, &items), ["a", "a/x", "a.txt", "b"]);
        assert_eq!(stats(&s, &items)[0].mode, (1 << 31) | 0o755);
        assert!(!readable(&s, items[0]) && readable(&s, items[1]));
    }

    #[test]
    fn daemon_patterns_narrow_the_scan_and_keep_parents() {
        let s = sources(vec![
            entry("app", EntryKind::Dir),
            entry("app/main.py", EntryKind::File),
            entry("app/notes.md", EntryKind::File),
            entry("req.txt", EntryKind::File),
        ]);
        let items = context_items(&s, &["app/main.py".into()], &[]).unwrap();
        assert_eq!(paths(&s, &items), ["app", "app/main.py"]);
        let items = context_items(&s, &[], &["*.md".into(), "app/*.md".into()]).unwrap();
        assert_eq!(paths(&s, &items), ["app", "app/main.py", "req.txt"]);
        let items = context_items(&s, &["app".into()], &[]).unwrap();
        assert_eq!(paths(&s, &items), ["app", "app/main.py", "app/notes.md"]);
    }

    #[test]
    fn the_dockerfile_source_is_served_from_memory() {
        let s = sources(Vec::new());
        let items = dockerfile_items(&s, &["Dockerfile".into()]);
        assert_eq!(paths(&s, &items), ["Dockerfile"]);
        assert_eq!(stats(&s, &items)[0].size, 7);
        assert_eq!(items, [Served::Dockerfile]);
        assert!(dockerfile_items(&s, &["Other".into()]).is_empty());
        let mut other = sources(Vec::new());
        other.dockerfile = b"FROM y\n".to_vec();
        assert_ne!(
            stats(&other, &dockerfile_items(&other, &[]))[0].mod_time,
            stats(&s, &items)[0].mod_time,
            "a changed render must look changed to the receiver"
        );
        let mut with_ignore = sources(Vec::new());
        with_ignore.ignore = Some(b"drop.txt\n".to_vec());
        let items = dockerfile_items(&with_ignore, &[]);
        assert_eq!(
            paths(&with_ignore, &items),
            ["Dockerfile", "Dockerfile.dockerignore"]
        );
        assert_eq!(items[1], Served::Ignore);
    }
}
