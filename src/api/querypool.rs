//! The query pool: a fixed set of query worker threads, separate from
//! tokio's blocking pool (which pushes use), so that a heavy query cannot
//! starve ingestion.
//!
//! * At most `max_concurrent` queries run at once (one per worker); the
//!   others wait in one FIFO queue.
//! * Each tenant may have at most `max_outstanding_per_tenant` queries
//!   queued; one more is Loki's 429 `too many outstanding requests`.
//! * A waiter that goes away (client gone, handler dropped) or whose
//!   deadline passes while queued is taken out of the queue without running:
//!   time spent queued counts toward the query timeout.
//! * Workers run at a lower CPU priority (per-thread nice on Linux); the
//!   threads a query spawns (scoped decode workers) inherit it. Push
//!   handling, the WAL and flushing never run on these threads.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::api::error::ApiError;
use crate::api::metrics::{write_gauge, Histogram};
use crate::logql::eval::{EvalError, QueryContext};

/// Loki's `max_outstanding_per_tenant` default.
pub const DEFAULT_MAX_OUTSTANDING: usize = 2048;
/// Default nice value of the query workers.
pub const DEFAULT_NICE: i32 = 10;

/// Upper bounds of the queue-wait histogram buckets, in seconds.
const WAIT_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 30.0,
];

/// `[query] max_concurrent`, `max_outstanding_requests` and `nice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads, i.e. queries running at once (at least 1).
    pub max_concurrent: usize,
    /// Queued (not yet running) queries per tenant; 0 = unlimited.
    pub max_outstanding_per_tenant: usize,
    /// Nice value of the worker threads (0 leaves their priority alone).
    pub nice: i32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_concurrent: default_max_concurrent(),
            max_outstanding_per_tenant: DEFAULT_MAX_OUTSTANDING,
            nice: DEFAULT_NICE,
        }
    }
}

/// The number of cores, at least 2.
pub fn default_max_concurrent() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
}

/// Why a query did not run (or did not finish) in the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The tenant already has `max_outstanding_per_tenant` queries queued (429).
    #[error("too many outstanding requests")]
    TooManyOutstanding,
    /// The deadline passed while the query was queued (504).
    #[error("{}", EvalError::Timeout)]
    Timeout,
    /// The query was cancelled while queued (499).
    #[error("{}", EvalError::Canceled)]
    Canceled,
    /// The pool is shutting down (503).
    #[error("the query pool is shutting down")]
    ShuttingDown,
    /// The query panicked (500).
    #[error("internal error: the query panicked")]
    Panicked,
}

impl PoolError {
    /// The HTTP status Loki answers with.
    pub fn status(&self) -> u16 {
        match self {
            PoolError::TooManyOutstanding => 429,
            PoolError::Timeout => 504,
            PoolError::Canceled => 499,
            PoolError::ShuttingDown => 503,
            PoolError::Panicked => 500,
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> ApiError {
        ApiError::new(e.status(), e.to_string())
    }
}

/// A queued query: runs with `None`, or answers its waiter with the error.
type Task = Box<dyn FnOnce(Option<PoolError>) + Send>;

struct Job {
    id: u64,
    tenant: String,
    cancel: Arc<AtomicBool>,
    deadline: Instant,
    queued_at: Instant,
    task: Task,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Queued jobs per tenant; a tenant with none has no entry.
    per_tenant: HashMap<String, usize>,
    next_id: u64,
    shutdown: bool,
}

impl Queue {
    fn forget(&mut self, tenant: &str) {
        if let Some(n) = self.per_tenant.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.per_tenant.remove(tenant);
            }
        }
    }

    /// Takes job `id` out of the queue; false when a worker already took it.
    fn withdraw(&mut self, id: u64) -> bool {
        match self.jobs.iter().position(|j| j.id == id) {
            Some(i) => {
                if let Some(job) = self.jobs.remove(i) {
                    self.forget(&job.tenant);
                }
                true
            }
            None => false,
        }
    }
}

struct Shared {
    config: PoolConfig,
    queue: Mutex<Queue>,
    wake: Condvar,
    running: AtomicUsize,
    rejected: AtomicU64,
    wait: Mutex<Histogram>,
}

impl Shared {
    fn observe_wait(&self, secs: f64) {
        self.wait.lock().observe(secs);
    }

    /// The next job to run, or `None` once the pool shuts down.
    fn next_job(&self) -> Option<Job> {
        let mut q = self.queue.lock();
        loop {
            if q.shutdown {
                return None;
            }
            if let Some(job) = q.jobs.pop_front() {
                q.forget(&job.tenant);
                return Some(job);
            }
            self.wake.wait(&mut q);
        }
    }
}

/// The pool. Dropping it stops the workers once their current query ends;
/// queued queries are answered with [`PoolError::ShuttingDown`].
pub struct QueryPool {
    shared: Arc<Shared>,
}

impl QueryPool {
    /// Starts `max_concurrent` (at least 1) worker threads.
    pub fn new(config: PoolConfig) -> std::io::Result<QueryPool> {
        let workers = config.max_concurrent.max(1);
        let shared = Arc::new(Shared {
            config,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            running: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            wait: Mutex::new(Histogram::new(&WAIT_BUCKETS)),
        });
        for i in 0..workers {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("query-{i}"))
                .spawn(move || worker(&s))?;
        }
        Ok(QueryPool { shared })
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Queues `f` for `tenant` and returns at once: the ticket waits for the
    /// result. `cancel` (checked when a worker takes the job) and `deadline`
    /// are the query's; a job past either never runs.
    pub fn submit<T, F>(
        &self,
        tenant: &str,
        cancel: Arc<AtomicBool>,
        deadline: Instant,
        f: F,
    ) -> Result<Ticket<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task: Task = Box::new(move |refused| {
            let out = match refused {
                Some(e) => Err(e),
                None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                    .map_err(|_| PoolError::Panicked),
            };
            let _ = tx.send(out);
        });
        let mut q = self.shared.queue.lock();
        if q.shutdown {
            return Err(PoolError::ShuttingDown);
        }
        let max = self.shared.config.max_outstanding_per_tenant;
        let queued = q.per_tenant.get(tenant).copied().unwrap_or(0);
        if max > 0 && queued >= max {
            drop(q);
            self.shared.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::TooManyOutstanding);
        }
        *q.per_tenant.entry(tenant.to_string()).or_default() += 1;
        let id = q.next_id;
        q.next_id += 1;
        q.jobs.push_back(Job {
            id,
            tenant: tenant.to_string(),
            cancel,
            deadline,
            queued_at: Instant::now(),
            task,
        });
        drop(q);
        self.shared.wake.notify_one();
        Ok(Ticket {
            rx,
            id,
            deadline,
            shared: self.shared.clone(),
            settled: false,
        })
    }

    /// Queues `f` and waits for its result (see [`QueryPool::submit`]).
    pub async fn run<T, F>(
        &self,
        tenant: &str,
        cancel: Arc<AtomicBool>,
        deadline: Instant,
        f: F,
    ) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(tenant, cancel, deadline, f)?.wait().await
    }

    /// Queries waiting for a worker.
    pub fn queue_length(&self) -> usize {
        self.shared.queue.lock().jobs.len()
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::Relaxed)
    }

    /// Queries refused with 429 since start.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }

    /// The pool's limits as `(name, value)` for the `miniloki_limit` family.
    pub fn limits(&self) -> [(&'static str, f64); 2] {
        let c = &self.shared.config;
        [
            ("query_max_concurrent", c.max_concurrent.max(1) as f64),
            (
                "query_max_outstanding_requests",
                c.max_outstanding_per_tenant as f64,
            ),
        ]
    }

    /// Appends the pool's metric families (Prometheus text format).
    pub fn render_metrics(&self, out: &mut String) {
        write_gauge(
            out,
            "miniloki_query_queue_length",
            "gauge",
            "Queries waiting for a query worker.",
            self.queue_length() as f64,
        );
        write_gauge(
            out,
            "miniloki_queries_running",
            "gauge",
            "Queries running on the query workers.",
            self.running() as f64,
        );
        write_gauge(
            out,
            "miniloki_query_rejected_total",
            "counter",
            "Queries refused with 429 too many outstanding requests.",
            self.rejected() as f64,
        );
        let name = "miniloki_query_queue_wait_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time queries spent queued before a worker took them.\n# TYPE {name} histogram"
        );
        self.shared.wait.lock().render(out, name, "");
    }
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        let drained: Vec<Job> = {
            let mut q = self.shared.queue.lock();
            q.shutdown = true;
            q.per_tenant.clear();
            q.jobs.drain(..).collect()
        };
        self.shared.wake.notify_all();
        for job in drained {
            (job.task)(Some(PoolError::ShuttingDown));
        }
    }
}

/// A queued query's result to come. Dropping it before the result takes
/// the query out of the queue (if no worker has taken it yet).
pub struct Ticket<T> {
    rx: oneshot::Receiver<Result<T, PoolError>>,
    id: u64,
    deadline: Instant,
    shared: Arc<Shared>,
    settled: bool,
}

impl<T> Ticket<T> {
    /// Waits for the result. If the deadline passes while the query is still
    /// queued, it is taken out and this is [`PoolError::Timeout`]; once
    /// running, the query itself watches its deadline.
    pub async fn wait(mut self) -> Result<T, PoolError> {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let res = match tokio::time::timeout_at(deadline, &mut self.rx).await {
            Ok(r) => r,
            Err(_) => {
                if self.shared.queue.lock().withdraw(self.id) {
                    self.settled = true;
                    return Err(PoolError::Timeout);
                }
                (&mut self.rx).await
            }
        };
        self.settled = true;
        res.unwrap_or(Err(PoolError::ShuttingDown))
    }
}

impl<T> Drop for Ticket<T> {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.queue.lock().withdraw(self.id);
        }
    }
}

fn worker(shared: &Shared) {
    if shared.config.nice != 0 {
        if let Err(error) = set_current_thread_nice(shared.config.nice) {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                tracing::warn!(
                    message = "Cannot lower the query workers' CPU priority; queries run at normal priority.",
                    nice = shared.config.nice,
                    %error
                );
            });
        }
    }
    while let Some(job) = shared.next_job() {
        let refused = if job.cancel.load(Ordering::Relaxed) {
            Some(PoolError::Canceled)
        } else if Instant::now() >= job.deadline {
            Some(PoolError::Timeout)
        } else {
            None
        };
        if refused.is_some() {
            (job.task)(refused);
            continue;
        }
        shared.observe_wait(job.queued_at.elapsed().as_secs_f64());
        shared.running.fetch_add(1, Ordering::Relaxed);
        (job.task)(None);
        shared.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl crate::api::AppState {
    /// Runs blocking query work `f` for `tenant` on the query pool under
    /// `ctx`'s deadline and cancel flag.
    pub async fn run_in_pool<T, F>(
        &self,
        tenant: &str,
        ctx: &QueryContext,
        f: F,
    ) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.query_pool
            .run(tenant, ctx.cancel.clone(), ctx.deadline, f)
            .await
    }

    /// [`AppState::run_in_pool`] with a fresh context (the tenant's query
    /// timeout as deadline): for endpoints that read the index and chunks
    /// without evaluating LogQL.
    pub async fn on_query_pool<T, F>(&self, tenant: &str, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ctx = self.engine.context(tenant);
        self.run_in_pool(tenant, &ctx, f).await
    }
}

/// Sets the calling thread's nice value (Linux: nice is per thread, and
/// threads it spawns inherit it).
#[cfg(target_os = "linux")]
pub fn set_current_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid has no preconditions; setpriority only reads its
    // arguments and reports failure through its return value and errno.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Elsewhere, threads keep their priority.
#[cfg(not(target_os = "linux"))]
pub fn set_current_thread_nice(_nice: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "per-thread priority is only set on Linux",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// The calling thread's nice value: field 19 of its /proc stat line.
    fn thread_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name (which may contain spaces) start at
        // field 3 (state): field 19 is the 17th of them.
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        rest.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    fn pool(max_concurrent: usize, max_outstanding: usize) -> QueryPool {
        QueryPool::new(PoolConfig {
            max_concurrent,
            max_outstanding_per_tenant: max_outstanding,
            nice: 0,
        })
        .unwrap()
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn flag() -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(false))
    }

    /// Occupies the pool's only worker until the returned sender is used.
    fn block(p: &QueryPool, tenant: &str) -> (mpsc::Sender<()>, Ticket<()>) {
        let (tx, rx) = mpsc::channel::<()>();
        let t = p
            .submit(tenant, flag(), far(), move || {
                let _ = rx.recv();
            })
            .unwrap();
        let start = Instant::now();
        while p.running() == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "blocker never ran"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        (tx, t)
    }

    #[tokio::test]
    async fn queued_queries_run_in_fifo_order() {
        let p = pool(1, 0);
        let (gate, blocker) = block(&p, "a");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tickets = Vec::new();
        for i in 0..6 {
            let o = order.clone();
            // Two tenants interleaved: one queue, arrival order.
            let tenant = if i % 2 == 0 { "a" } else { "b" };
            tickets.push(
                p.submit(tenant, flag(), far(), move || o.lock().push(i))
                    .unwrap(),
            );
        }
        assert_eq!(p.queue_length(), 6);
        gate.send(()).unwrap();
        blocker.wait().await.unwrap();
        for t in tickets {
            t.wait().await.unwrap();
        }
        assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(p.queue_length(), 0);
    }

    #[tokio::test]
    async fn at_most_max_concurrent_queries_run_at_once() {
        let p = pool(2, 0);
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tickets = Vec::new();
        for _ in 0..8 {
            let (now, peak) = (now.clone(), peak.clone());
            tickets.push(
                p.submit("t", flag(), far(), move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    now.fetch_sub(1, Ordering::SeqCst);
                })
                .unwrap(),
            );
        }
        for t in tickets {
            t.wait().await.unwrap();
        }
        // 8 jobs of 30 ms on 2 workers: both workers were busy at once,
        // never a third.
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        // A worker counts itself idle just after answering its waiter.
        let start = Instant::now();
        while p.running() != 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "still running");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[tokio::test]
    async fn a_tenant_over_its_outstanding_limit_gets_429_and_others_do_not() {
        let p = pool(1, 2);
        let (gate, blocker) = block(&p, "a");
        // The running query does not count: two more may queue.
        let a1 = p.submit("a", flag(), far(), || 1).unwrap();
        let a2 = p.submit("a", flag(), far(), || 2).unwrap();
        let err = p.submit("a", flag(), far(), || 3).err().unwrap();
        assert_eq!(err, PoolError::TooManyOutstanding);
        assert_eq!(err.status(), 429);
        assert_eq!(err.to_string(), "too many outstanding requests");
        let api: ApiError = err.into();
        assert_eq!(
            (api.status, api.message.as_str()),
            (429, "too many outstanding requests")
        );
        // Another tenant has its own allowance.
        let b1 = p.submit("b", flag(), far(), || 10).unwrap();
        assert_eq!(p.rejected(), 1);
        gate.send(()).unwrap();
        blocker.wait().await.unwrap();
        assert_eq!(a1.wait().await, Ok(1));
        assert_eq!(a2.wait().await, Ok(2));
        assert_eq!(b1.wait().await, Ok(10));
        // Once the queue drained, tenant a may queue again.
        assert_eq!(p.run("a", flag(), far(), || 4).await, Ok(4));
        let mut m = String::new();
        p.render_metrics(&mut m);
        assert!(m.contains("\nminiloki_query_rejected_total 1\n"), "{m}");
        assert!(
            m.contains("\nminiloki_query_queue_wait_seconds_count 5\n"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_is_dropped_from_the_queue_unrun() {
        let p = pool(1, 1);
        let (gate, blocker) = block(&p, "a");
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let gone = p
            .submit("a", flag(), far(), move || r.store(true, Ordering::SeqCst))
            .unwrap();
        assert_eq!(p.queue_length(), 1);
        drop(gone); // the handler future was dropped: client gone
        assert_eq!(p.queue_length(), 0);
        // Its slot is free again for the tenant.
        let after = p.submit("a", flag(), far(), || ()).unwrap();
        // A waiter whose cancel flag is set is refused by the worker.
        let cancel = flag();
        let r = ran.clone();
        let cancelled = p
            .submit("b", cancel.clone(), far(), move || {
                r.store(true, Ordering::SeqCst)
            })
            .unwrap();
        cancel.store(true, Ordering::SeqCst);
        gate.send(()).unwrap();
        blocker.wait().await.unwrap();
        after.wait().await.unwrap();
        assert_eq!(cancelled.wait().await, Err(PoolError::Canceled));
        assert!(!ran.load(Ordering::SeqCst), "a cancelled query ran");
    }

    #[tokio::test]
    async fn time_queued_counts_toward_the_timeout() {
        let p = pool(1, 0);
        let (gate, blocker) = block(&p, "a");
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(50);
        let res = p
            .run("a", flag(), deadline, move || {
                r.store(true, Ordering::SeqCst)
            })
            .await;
        assert_eq!(res, Err(PoolError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(p.queue_length(), 0, "the timed-out query left the queue");
        gate.send(()).unwrap();
        blocker.wait().await.unwrap();
        p.run("a", flag(), far(), || ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        let api: ApiError = PoolError::Timeout.into();
        assert_eq!(api.status, 504);
        assert!(
            api.message.starts_with("request timed out"),
            "{}",
            api.message
        );
    }

    #[tokio::test]
    async fn a_panicking_query_is_a_500_and_the_worker_survives() {
        let p = pool(1, 0);
        let res: Result<(), _> = p.run("a", flag(), far(), || panic!("boom")).await;
        assert_eq!(res, Err(PoolError::Panicked));
        assert_eq!(p.run("a", flag(), far(), || 7).await, Ok(7));
    }

    #[tokio::test]
    async fn workers_and_their_scoped_threads_are_niced_but_blocking_threads_are_not() {
        let base = thread_nice();
        if base > 10 {
            return; // the test runner itself runs above nice 10: cannot check
        }
        let p = QueryPool::new(PoolConfig {
            max_concurrent: 2,
            max_outstanding_per_tenant: 0,
            nice: 10,
        })
        .unwrap();
        let (worker, scoped) = p
            .run("a", flag(), far(), || {
                let scoped = std::thread::scope(|s| s.spawn(thread_nice).join().unwrap());
                (thread_nice(), scoped)
            })
            .await
            .unwrap();
        assert_eq!((worker, scoped), (10, 10));
        // The caller and tokio's blocking threads (pushes) keep theirs.
        assert_eq!(thread_nice(), base);
        let blocking = tokio::task::spawn_blocking(thread_nice).await.unwrap();
        assert_eq!(blocking, base);
    }

    #[tokio::test]
    async fn http_queries_over_the_outstanding_limit_get_loki_429() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::resolve(&crate::config::ServeArgs {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        config.query_pool = PoolConfig {
            max_concurrent: 1,
            max_outstanding_per_tenant: 1,
            nice: 0,
        };
        let st = crate::api::build_state(config).unwrap();
        let (gate, blocker) = block(&st.query_pool, "fake");
        let req = |q: &str| {
            axum::http::Request::get(format!("/loki/api/v1/labels?query={q}"))
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let app = crate::api::router(st.clone());
        let first = tokio::spawn(app.clone().oneshot(req("%7Ba%3D%221%22%7D")));
        let start = Instant::now();
        while st.query_pool.queue_length() == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "never queued");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let second = app.clone().oneshot(req("%7Bb%3D%221%22%7D")).await.unwrap();
        assert_eq!(second.status(), 429);
        let body = axum::body::to_bytes(second.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&body[..], b"too many outstanding requests\n");
        gate.send(()).unwrap();
        blocker.wait().await.unwrap();
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.status(), 200);
        let mut m = String::new();
        st.render_metrics(&mut m);
        assert!(m.contains("\nminiloki_query_rejected_total 1\n"), "{m}");
        assert!(
            m.contains("\nminiloki_limit{kind=\"server\",name=\"query_max_outstanding_requests\",tenant=\"\"} 1\n"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn dropping_the_pool_answers_queued_waiters() {
        let p = pool(1, 0);
        let (gate, blocker) = block(&p, "a");
        let queued = p.submit("a", flag(), far(), || ()).unwrap();
        drop(p);
        assert_eq!(queued.wait().await, Err(PoolError::ShuttingDown));
        gate.send(()).unwrap();
        blocker.wait().await.unwrap();
    }
}
