//! Start-up, reload and stop: binds the listeners, builds the [`App`],
//! and hands the server the two handlers that read the current one. The
//! only place that knows both the state and the sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::Request;
use hyper::body::Incoming;

use crate::app::{App, BuildError};
use crate::config::Config;
use crate::server::{self, ServerError, TlsSettings};
use crate::{admin, pipeline};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The state could not be built (discovery or the metrics).
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A proxy that is serving: its bound addresses, and the way to reload and
/// stop it.
pub struct Running {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where the admin API answers.
    pub admin: SocketAddr,
    current: Arc<ArcSwap<App>>,
    /// The client listener's TLS settings, when it started with
    /// `[server.tls]`: a reload stores the new files' settings here.
    tls: Option<TlsSettings>,
    servers: server::Handle,
}

/// Why a reload was refused; the running config stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config's state cannot be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The new config's rings did not all resolve in time.
    #[error("the new config's rings were not ready within {0:?}: {1}")]
    NotReady(Duration, String),
}

/// How long a reload waits for the new config's rings before giving up.
pub const RELOAD_READY_TIMEOUT: Duration = Duration::from_secs(10);

impl Running {
    /// The state requests are served with now.
    pub fn app(&self) -> Arc<App> {
        self.current.load_full()
    }

    /// Replaces the config of the running proxy without dropping a request:
    /// the new state is built and its rings resolved first, then swapped in
    /// whole; requests in flight finish on the old one. The listen and admin
    /// addresses stay as bound, and `proxy_protocol` and whether the
    /// listener is HTTPS as started (a change to them needs a restart, and
    /// is logged). The `[server.tls]` files were read again by the config's
    /// load: new connections get their certificates, open ones keep theirs.
    ///
    /// # Errors
    ///
    /// [`ReloadError`] when the new config cannot start or its rings do not
    /// resolve in time; nothing changes then.
    pub async fn reload(&self, config: Config) -> Result<(), ReloadError> {
        let result = self.swap_in(config).await;
        let app = self.app();
        app.metrics.reloaded(result.is_ok());
        if result.is_ok() {
            app.metrics.config_in_use(&app.config);
        }
        result
    }

    /// Counts a reload refused before it reached [`Running::reload`]: its
    /// config file did not load.
    pub fn reload_refused(&self) {
        self.app().metrics.reloaded(false);
    }

    /// [`Running::reload`], uncounted.
    async fn swap_in(&self, mut config: Config) -> Result<(), ReloadError> {
        let next = {
            let app = self.app();
            let running = &app.config.server;
            if config.server.listen != running.listen || config.server.admin != running.admin {
                tracing::warn!(
                    "server.listen and server.admin changes take effect on restart only"
                );
            }
            // The listener reads the header or not as it started: say so
            // rather than let the new value seem in force.
            if config.server.proxy_protocol != running.proxy_protocol {
                tracing::warn!("server.proxy_protocol changes take effect on restart only");
            }
            if config.server.tls.is_some() != self.tls.is_some() {
                tracing::warn!("adding or removing [server.tls] takes effect on restart only");
            }
            // The threads serve on as started; the new state keeps
            // connections per thread for as many.
            if config.server.workers != running.workers {
                tracing::warn!("server.workers changes take effect on restart only");
                config.server.workers = running.workers;
            }
            App::next(config, &app)?
        };
        let ready = tokio::time::timeout(RELOAD_READY_TIMEOUT, async {
            while !next.discovery.ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if ready.is_err() {
            let missing: Vec<String> = next
                .services
                .iter()
                .map(|service| (&service.config().name, &service.upstream.ring))
                .filter(|(_, ring)| ring.load().is_none())
                .map(|(name, ring)| match ring.status().last_error {
                    Some((_, error)) => format!("{name}: {error}"),
                    None => format!("{name}: no answer yet"),
                })
                .collect();
            return Err(ReloadError::NotReady(
                RELOAD_READY_TIMEOUT,
                missing.join("; "),
            ));
        }
        if let (Some(settings), Some(tls)) = (&self.tls, &next.config.server.tls) {
            settings.store(Arc::clone(&tls.settings));
            tracing::info!(
                cert = %tls.files.cert.display(),
                "TLS files read again: new connections get this certificate"
            );
        }
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Stops accepting connections, lets requests in flight finish, and
    /// returns when both listeners are closed and no upgraded connection
    /// is left: those still open at the end of `drain_timeout` are closed
    /// then (SPEC §10).
    pub async fn shutdown(self) {
        let started = tokio::time::Instant::now();
        let app = self.app();
        let drain = app.config.server.drain_timeout;
        let mut servers = self.servers;
        servers.shutdown().await;
        app.tunnels
            .close_within(drain.saturating_sub(started.elapsed()))
            .await;
        // Ends the worker threads, now that nothing runs on them.
        drop(servers);
    }
}

/// Binds the listeners of `config.server`, starts discovery, and serves
/// until [`Running::shutdown`]. Port 0 picks a free port; see
/// [`Running::listen`]. With `server.workers` over 1, client connections
/// are served on that many threads of their own, each with its own
/// runtime; unset or 1, on the caller's runtime, as everything else is.
///
/// # Errors
///
/// [`StartError`] when a listener cannot be bound or discovery cannot start.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let (listener, listen) = server::bind_client(config.server.listen, config.server.workers)?;
    let admin_listener = server::bind(config.server.admin)?;
    let admin = server::local_addr(&admin_listener)?;
    let settings = config.server.clone();
    let tls: Option<TlsSettings> = settings
        .tls
        .as_ref()
        .map(|tls| Arc::new(ArcSwap::new(Arc::clone(&tls.settings))));
    let app = App::new(config)?;
    app.metrics.config_in_use(&app.config);
    let current = Arc::new(ArcSwap::from_pointee(app));
    // Each request reads the current state once, so a reload swaps it for
    // the requests that follow while those in flight finish on the old one.
    let proxy_state = Arc::clone(&current);
    let admin_state = Arc::clone(&current);
    let servers = server::spawn(
        &settings,
        tls.clone(),
        (
            listener,
            move |request: Request<Incoming>, client, interim| {
                pipeline::handle(proxy_state.load_full(), request, client, interim)
            },
        ),
        (
            admin_listener,
            // The admin API answers itself: no instance, no `1xx`.
            move |request: Request<Incoming>, _client, _interim| {
                let app = admin_state.load_full();
                async move { admin::handle(&app, request, admin).await }
            },
        ),
    )?;
    Ok(Running {
        listen,
        admin,
        current,
        tls,
        servers,
    })
}
