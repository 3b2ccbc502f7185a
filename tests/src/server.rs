//! [`TestServer`]: the real savesync server, in-process, on `127.0.0.1:<free port>`.
//!
//! The server runs on its own thread with its own tokio runtime, so tests may block freely
//! (FUSE I/O, polling) without starving it, and so `stop` can drop every connection (the
//! runtime goes away) which releases the port. `restart` opens the same data directory
//! again and rebinds the same port, which is what a device sees when its server reboots.

use savesync_server::{App, Config};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// How long `launch` may take to return after the shutdown signal before the harness drops
/// its runtime (and so every connection) by force.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Deadline for the server thread to start (open the DB, run migrations).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for rebinding the old port on restart.
const REBIND_DEADLINE: Duration = Duration::from_secs(10);

/// The name of every thread of the in-process server's runtime (the benchmark adds up
/// their CPU time).
pub const SERVER_THREAD_NAME: &str = "e2e-server-rt";

/// A real server with its own data directory. Dropping it stops the server.
pub struct TestServer {
    data_dir: TempDir,
    addr: SocketAddr,
    /// The most recently opened app: pairing codes are issued through it even while the
    /// server is stopped (it only touches the SQLite file).
    app: App,
    running: Option<RunningServer>,
    /// Applied to the default config on every start and restart.
    tweak: ConfigTweak,
}

/// A change to the server's default config (e.g. a shorter keep-alive interval).
type ConfigTweak = Arc<dyn Fn(&mut Config) + Send + Sync>;

struct RunningServer {
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<ServerExit>,
}

/// How the server thread ended.
#[derive(Debug)]
enum ServerExit {
    Graceful,
    Failed(String),
    /// `launch` did not return within [`SHUTDOWN_GRACE`] of the shutdown signal.
    Forced,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("data_dir", &self.data_dir.path())
            .field("addr", &self.addr)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Start a server on a fresh temporary data directory and a free loopback port.
    pub async fn start() -> TestServer {
        run_blocking(TestServer::start_blocking).await
    }

    /// [`TestServer::start`] for plain (non-async) tests.
    #[must_use]
    pub fn start_blocking() -> TestServer {
        TestServer::start_with_config(|_| {})
    }

    /// [`TestServer::start_blocking`] with `tweak` applied to the default config (on this
    /// start and every restart).
    #[must_use]
    pub fn start_with_config(tweak: impl Fn(&mut Config) + Send + Sync + 'static) -> TestServer {
        let tweak: ConfigTweak = Arc::new(tweak);
        let data_dir = tempfile::Builder::new()
            .prefix("savesync-e2e-server-")
            .tempdir()
            .expect("create the server's data directory");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of the listener");
        let (app, running) = spawn_server(data_dir.path(), listener, Arc::clone(&tweak));
        TestServer { data_dir, addr, app, running: Some(running), tweak }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's data directory (SQLite DB and blobs).
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The running server's app (the same stores and feed the server uses), for tests
    /// that call the server library directly (e.g. `savesync_server::remotes`).
    #[must_use]
    pub fn app(&self) -> &App {
        &self.app
    }

    /// True between `start`/`restart` and `stop`.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// A fresh one-time pairing code for `user` (created if missing).
    #[must_use]
    pub fn pairing_code(&self, user: &str) -> String {
        self.app.issue_pairing_code(user).expect("issue a pairing code").code
    }

    /// A RetroArch (WebDAV) device of `user` named `name`, its saves under library folder
    /// `prefix`: what `savesync-server pair --kind retroarch` creates.
    #[must_use]
    pub fn retroarch_device(
        &self,
        user: &str,
        name: &str,
        prefix: &str,
    ) -> savesync_server::dav::DavCredentials {
        let app = &self.app;
        std::thread::scope(|s| {
            s.spawn(|| {
                futures::executor::block_on(savesync_server::dav::create_device(
                    app, user, name, prefix,
                ))
            })
            .join()
            .expect("create thread")
        })
        .expect("create a RetroArch device")
    }

    /// A client paired as a new device `device` of `user`.
    pub async fn client_for(&self, user: &str, device: &str) -> savesync_client::Client {
        let url = self.url();
        let code = self.pairing_code(user);
        let anonymous = savesync_client::Client::new(&url, None).expect("client for pairing");
        let paired = anonymous
            .pair(&code, device, "e2e-test")
            .await
            .unwrap_or_else(|e| panic!("pair device {device} of {user}: {e}"));
        savesync_client::Client::new(&url, Some(paired.token)).expect("client with a token")
    }

    /// Stop gracefully and release the port. A no-op when already stopped.
    pub async fn stop(&mut self) {
        let running = self.running.take();
        run_blocking(move || stop_server(running)).await;
    }

    /// [`TestServer::stop`] for plain tests.
    pub fn stop_blocking(&mut self) {
        stop_server(self.running.take());
    }

    /// Stop (if running), then serve the same data directory on the same port again.
    pub async fn restart(&mut self) {
        self.stop().await;
        let data_dir = self.data_dir.path().to_path_buf();
        let addr = self.addr;
        let tweak = Arc::clone(&self.tweak);
        let (app, running) = run_blocking(move || respawn(&data_dir, addr, tweak)).await;
        self.app = app;
        self.running = Some(running);
    }

    /// [`TestServer::restart`] for plain tests.
    pub fn restart_blocking(&mut self) {
        self.stop_blocking();
        let (app, running) = respawn(self.data_dir.path(), self.addr, Arc::clone(&self.tweak));
        self.app = app;
        self.running = Some(running);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        stop_server(self.running.take());
    }
}

/// Run blocking harness work off the async executor of the caller.
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn respawn(data_dir: &Path, addr: SocketAddr, tweak: ConfigTweak) -> (App, RunningServer) {
    let start = Instant::now();
    let listener = loop {
        match TcpListener::bind(addr) {
            Ok(listener) => break listener,
            Err(e) if start.elapsed() < REBIND_DEADLINE => {
                tracing::debug!("rebinding {addr} failed ({e}); retrying");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("could not rebind {addr} within {REBIND_DEADLINE:?}: {e}"),
        }
    };
    spawn_server(data_dir, listener, tweak)
}

/// Open the app and run `launch` on a new thread with its own runtime. The app is opened
/// inside that runtime in case it spawns background tasks (retention, GC).
fn spawn_server(
    data_dir: &Path,
    listener: TcpListener,
    tweak: ConfigTweak,
) -> (App, RunningServer) {
    listener.set_nonblocking(true).expect("nonblocking listener");
    let data_dir: PathBuf = data_dir.to_path_buf();
    let (app_tx, app_rx) = mpsc::channel::<Result<App, String>>();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("e2e-server".into())
        .spawn(move || serve_on_own_runtime(&data_dir, &*tweak, listener, &app_tx, shutdown_rx))
        .expect("spawn the server thread");
    let app = match app_rx.recv_timeout(START_DEADLINE) {
        Ok(Ok(app)) => app,
        Ok(Err(e)) => panic!("server failed to start: {e}"),
        Err(e) => panic!("server did not start within {START_DEADLINE:?}: {e}"),
    };
    (app, RunningServer { shutdown: shutdown_tx, thread })
}

fn serve_on_own_runtime(
    data_dir: &Path,
    tweak: &(dyn Fn(&mut Config) + Send + Sync),
    listener: TcpListener,
    app_tx: &mpsc::Sender<Result<App, String>>,
    shutdown_rx: oneshot::Receiver<()>,
) -> ServerExit {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREAD_NAME)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = app_tx.send(Err(format!("runtime: {e}")));
            return ServerExit::Failed(e.to_string());
        }
    };
    let opened = {
        let _guard = runtime.enter();
        let mut config = Config::with_data_dir(data_dir);
        tweak(&mut config);
        App::open(config)
    };
    let app = match opened {
        Ok(app) => app,
        Err(e) => {
            let _ = app_tx.send(Err(format!("App::open: {e:#}")));
            return ServerExit::Failed(e.to_string());
        }
    };
    let _ = app_tx.send(Ok(app.clone()));
    let exit = runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return ServerExit::Failed(format!("listener: {e}")),
        };
        let (signalled_tx, signalled_rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = shutdown_rx.await;
            let _ = signalled_tx.send(());
        };
        let forced_after_grace = async move {
            if signalled_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            result = savesync_server::launch(app, listener, shutdown) => match result {
                Ok(()) => ServerExit::Graceful,
                Err(e) => ServerExit::Failed(format!("{e:#}")),
            },
            () = forced_after_grace => ServerExit::Forced,
        }
    });
    // Dropping the runtime closes every socket still open, so the port is free afterwards.
    runtime.shutdown_timeout(Duration::from_secs(2));
    exit
}

fn stop_server(running: Option<RunningServer>) {
    let Some(running) = running else { return };
    let _ = running.shutdown.send(());
    let deadline = SHUTDOWN_GRACE + Duration::from_secs(10);
    let start = Instant::now();
    while !running.thread.is_finished() {
        if start.elapsed() > deadline {
            eprintln!("WARNING: e2e server thread did not end within {deadline:?}; leaking it");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match running.thread.join() {
        Ok(ServerExit::Graceful) => {}
        Ok(ServerExit::Forced) => eprintln!(
            "WARNING: savesync_server::launch did not return within {SHUTDOWN_GRACE:?} of the \
             shutdown signal; the harness dropped its connections by force"
        ),
        Ok(ServerExit::Failed(e)) => eprintln!("WARNING: e2e server ended with an error: {e}"),
        Err(_) => eprintln!("WARNING: e2e server thread panicked"),
    }
}
