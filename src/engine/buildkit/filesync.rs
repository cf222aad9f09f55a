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
use crate::context::entry::{dev_numbers, Entry, EntryKind};
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
    /// The entries `COPY . /dst/` sees, sorted by path bytes.
    pub entries: Vec<Entry>,
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

/// One entry as sent: its stat, and where to read it when it is a regular file.
#[derive(Debug)]
struct Item {
    stat: Stat,
    /// `None` for everything the receiver cannot ask data for.
    read: Option<Readable>,
}

#[derive(Debug, Clone)]
enum Readable {
    File { path: PathBuf, size: u64 },
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
        let (stat_tx, stat_rx) = mpsc::channel::<Result<Packet, Status>>(items.len() + 1);
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
    items: Vec<Item>,
    sources: Arc<Sources>,
    sent: Arc<Transfer>,
    mut incoming: Streaming<Packet>,
    stats_tx: mpsc::Sender<Result<Packet, Status>>,
    tx: mpsc::Sender<Result<Packet, Status>>,
) {
    let readable: HashMap<u32, Readable> = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| Some((u32::try_from(i).ok()?, it.read.clone()?)))
        .collect();
    let stats = tokio::spawn(async move {
        for it in items {
            let p = Packet {
                r#type: PacketType::PacketStat as i32,
                stat: Some(it.stat),
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
    let (req_tx, mut req_rx) = mpsc::channel::<u32>(readable.len() + 1);
    let data_tx = tx.clone();
    let sender = tokio::spawn(async move {
        while let Some(id) = req_rx.recv().await {
            let Some(r) = readable.get(&id) else {
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
    what: &Readable,
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
        Readable::Dockerfile | Readable::Ignore => {
            let bytes = match what {
                Readable::Ignore => sources.ignore.as_deref().unwrap_or_default(),
                _ => &sources.dockerfile,
            };
            for c in bytes.chunks(CHUNK) {
                sent.add(c.len());
                tx.send(Ok(data(c.to_vec()))).await.map_err(|_| closed())?;
            }
        }
        Readable::File { path, size } => {
            let full = sources.root.join(path);
            let file = tokio::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&full)
                .await
                .map_err(|e| Status::internal(format!("cannot open {}: {e}", path.display())))?;
            // Read what was scanned: a file that grew since cannot change what was announced.
            let mut file = file.take(*size);
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

/// The Dockerfile (and the applied ignore file), the entries of the `dockerfile` source.
fn dockerfile_items(sources: &Sources, include: &[String]) -> Vec<Item> {
    let ignore_name = format!("{}.dockerignore", sources.dockerfile_name);
    let files = [
        (
            sources.dockerfile_name.clone(),
            Some(&sources.dockerfile),
            Readable::Dockerfile,
        ),
        (ignore_name, sources.ignore.as_ref(), Readable::Ignore),
    ];
    files
        .into_iter()
        .filter_map(|(name, bytes, read)| {
            let bytes = bytes?;
            if !include.is_empty() && !included(include, name.as_bytes()) {
                return None;
            }
            Some(Item {
                stat: Stat {
                    path: name,
                    mode: 0o644,
                    size: bytes.len() as i64,
                    mod_time: content_time(bytes),
                    ..Default::default()
                },
                read: Some(read),
            })
        })
        .collect()
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
) -> Result<Vec<Item>, Status> {
    let mut excluded = Matcher::empty();
    for p in exclude {
        excluded.add_pattern(p.as_bytes()).map_err(|e| {
            Status::invalid_argument(format!("bad exclude pattern from the daemon: {e}"))
        })?;
    }
    let wanted = |e: &Entry| {
        let p = e.path_bytes();
        (include.is_empty() || included(include, p)) && !excluded.is_excluded(p)
    };
    let by_path: HashMap<&[u8], &Entry> = sources
        .entries
        .iter()
        .map(|e| (e.path_bytes(), e))
        .collect();
    let mut keep: HashSet<&[u8]> = HashSet::new();
    for e in sources.entries.iter().filter(|e| wanted(e)) {
        let p = e.path_bytes();
        if !keep.insert(p) {
            continue;
        }
        // The receiver refuses an entry whose parent directory it has not seen.
        let mut cut = p;
        while let Some(i) = cut.iter().rposition(|&b| b == b'/') {
            cut = &cut[..i];
            if by_path.contains_key(cut) && !keep.insert(cut) {
                break;
            }
        }
    }
    let mut chosen: Vec<&Entry> = sources
        .entries
        .iter()
        .filter(|e| keep.contains(e.path_bytes()))
        .collect();
    chosen.sort_by(|a, b| walk_order(a.path_bytes(), b.path_bytes()));
    let mut first_link: HashMap<(u64, u64), String> = HashMap::new();
    Ok(chosen
        .into_iter()
        .map(|e| {
            let path = String::from_utf8_lossy(e.path_bytes()).into_owned();
            let mut stat = Stat {
                path: path.clone(),
                mode: go_mode(e),
                size: if e.kind == EntryKind::Dir {
                    0
                } else {
                    e.size as i64
                },
                mod_time: e.stat.mtime_ns,
                ..Default::default()
            };
            let mut read = None;
            match e.kind {
                EntryKind::Symlink => {
                    stat.linkname = e
                        .link_target
                        .as_ref()
                        .map(|t| String::from_utf8_lossy(t.as_os_str().as_bytes()).into_owned())
                        .unwrap_or_default();
                }
                EntryKind::CharDevice | EntryKind::BlockDevice => {
                    let (major, minor) = dev_numbers(e.rdev);
                    stat.devmajor = i64::from(major);
                    stat.devminor = i64::from(minor);
                }
                EntryKind::File => {
                    let inode = (e.stat.dev, e.stat.ino);
                    let hard = (inode != (0, 0))
                        .then(|| first_link.get(&inode).cloned())
                        .flatten();
                    match hard {
                        // A hard link to a file already sent: the receiver links it.
                        Some(first) => stat.linkname = first,
                        None => {
                            if inode != (0, 0) {
                                first_link.insert(inode, path);
                            }
                            read = Some(Readable::File {
                                path: e.path.clone(),
                                size: e.size,
                            });
                        }
                    }
                }
                EntryKind::Dir | EntryKind::Fifo => {}
            }
            Item { stat, read }
        })
        .collect())
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
fn go_mode(e: &Entry) -> u32 {
    let mut m = e.mode & 0o777;
    if e.mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if e.mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if e.mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m | match e.kind {
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
    use crate::context::entry::StatInfo;

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

    fn paths(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.stat.path.as_str()).collect()
    }

    fn sources(entries: Vec<Entry>) -> Sources {
        let mut entries = entries;
        entries.sort_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        Sources {
            root: PathBuf::from("/nonexistent"),
            entries,
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
        assert_eq!(paths(&items), ["a", "a/x", "a.txt", "b"]);
        assert_eq!(items[0].stat.mode, (1 << 31) | 0o755);
        assert!(items[0].read.is_none() && items[1].read.is_some());
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
        assert_eq!(paths(&items), ["app", "app/main.py"]);
        let items = context_items(&s, &[], &["*.md".into(), "app/*.md".into()]).unwrap();
        assert_eq!(paths(&items), ["app", "app/main.py", "req.txt"]);
        let items = context_items(&s, &["app".into()], &[]).unwrap();
        assert_eq!(paths(&items), ["app", "app/main.py", "app/notes.md"]);
    }

    #[test]
    fn the_dockerfile_source_is_served_from_memory() {
        let s = sources(Vec::new());
        let items = dockerfile_items(&s, &["Dockerfile".into()]);
        assert_eq!(paths(&items), ["Dockerfile"]);
        assert_eq!(items[0].stat.size, 7);
        assert!(matches!(items[0].read, Some(Readable::Dockerfile)));
        assert!(dockerfile_items(&s, &["Other".into()]).is_empty());
        let mut other = sources(Vec::new());
        other.dockerfile = b"FROM y\n".to_vec();
        assert_ne!(
            dockerfile_items(&other, &[])[0].stat.mod_time,
            items[0].stat.mod_time,
            "a changed render must look changed to the receiver"
        );
        let mut with_ignore = sources(Vec::new());
        with_ignore.ignore = Some(b"drop.txt\n".to_vec());
        let items = dockerfile_items(&with_ignore, &[]);
        assert_eq!(paths(&items), ["Dockerfile", "Dockerfile.dockerignore"]);
        assert!(matches!(items[1].read, Some(Readable::Ignore)));
    }
}
